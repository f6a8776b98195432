import NIOCore
import NIOHTTP1

/// With auth on, checks the API key of a WebSocket upgrade (`/ws`) before Hummingbird decides it, and refuses a
/// missing, unknown or revoked key with 401 JSON (`unauthorized`). `AuthMiddleware` checks the same key again in
/// the router and puts the caller in the request context; a refusal there would only become Hummingbird's bare 400.
///
/// The key is looked up in the database (async): the request's parts wait here meanwhile, then go on in order.
/// Upgrades come only as a connection's first request, so this handler looks at the first head and removes itself.
final class UpgradeAuthHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let keys: any KeyRepository
    private var waiting: [NIOAny]?

    init(keys: any KeyRepository) {
        self.keys = keys
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if waiting != nil {
            waiting?.append(data)
            return
        }
        guard case .head(let head) = unwrapInboundIn(data), head.headers.contains(name: "upgrade") else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        waiting = [data]
        let token = AuthMiddleware.token(
            authorization: head.headers.first(name: "authorization"),
            cookies: head.headers["cookie"])
        let keys = self.keys
        let lookup = context.eventLoop.makePromise(of: APIError?.self)
        lookup.completeWithTask { try await AuthMiddleware.refusal(token: token, keys: keys) }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        lookup.futureResult.whenComplete { result in
            let (handler, context) = loopBound.value
            switch result {
            case .success(nil):
                for part in handler.waiting ?? [] { context.fireChannelRead(part) }
                handler.waiting = nil
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            case .success(let refusal?):
                handler.waiting = [] // dropped: the connection ends with the answer
                context.triggerUserOutboundEvent(ErrorAnswerHandler.Answer(error: refusal), promise: nil)
            case .failure:
                handler.waiting = []
                context.triggerUserOutboundEvent(ErrorAnswerHandler.Answer(error: .internal), promise: nil)
            }
        }
    }
}
