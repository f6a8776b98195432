import NIOCore
import NIOHTTP1

/// Applies `BrowserAccessPolicy` (Host and Origin) to a WebSocket upgrade (`/ws`), refusing it with 403 JSON.
///
/// `BrowserAccessMiddleware` checks every other request, and the router runs it for upgrades too, but a refused
/// upgrade there becomes Hummingbird's bare 400: the upgrade is decided before any route can answer. Upgrades come
/// only as a connection's first request (Hummingbird redirects later ones to a new connection), so this handler
/// looks at the first head and then removes itself.
final class UpgradeAccessHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let policy: BrowserAccessPolicy

    init(policy: BrowserAccessPolicy) {
        self.policy = policy
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return context.fireChannelRead(data) }
        if head.headers.contains(name: "upgrade"),
            let refusal = policy.refusal(
                method: head.method.rawValue, host: head.headers.first(name: "host"),
                origin: head.headers.first(name: "origin"), isUpgrade: true)
        {
            context.triggerUserOutboundEvent(ErrorAnswerHandler.Answer(error: refusal), promise: nil)
            return
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
