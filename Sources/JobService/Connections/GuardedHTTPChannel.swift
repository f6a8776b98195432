import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Hummingbird's HTTP/1 + WebSocket channel with this service's guards added to every connection right after NIO's
/// request decoder, so they see the first request head too (Hummingbird adds its own extra handlers only once the
/// first head has arrived): JSON answers for malformed heads, the request-head timeout and the Host/Origin check of
/// WebSocket upgrades.
struct GuardedHTTPChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let limits: ConnectionLimits
    let access: BrowserAccessPolicy
    /// With auth on: where the keys of WebSocket upgrades are checked.
    let keys: (any KeyRepository)?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let errorAnswer = ErrorAnswerHandler(linger: TimeAmount(limits.requestHeadTimeout))
            let headTimeout = RequestHeadTimeoutHandler(timeout: TimeAmount(limits.requestHeadTimeout))
            try pipeline.addHandler(errorAnswer, position: .after(decoder))
            try pipeline.addHandler(headTimeout, position: .after(errorAnswer))
            let accessHandler = UpgradeAccessHandler(policy: access)
            try pipeline.addHandler(accessHandler, position: .after(headTimeout))
            if let keys { try pipeline.addHandler(UpgradeAuthHandler(keys: keys), position: .after(accessHandler)) }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
