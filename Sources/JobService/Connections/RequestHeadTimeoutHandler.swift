import NIOCore
import NIOHTTP1

/// Gives a new connection `timeout` to send its first request head; then it is answered 408 `request_timeout` and
/// closed (by `ErrorAnswerHandler`). Without it a client that opens connections and sends part of a head holds
/// them, and their file descriptors, for ever. Once the head is in it removes itself: later requests on the
/// connection are Hummingbird's `idleTimeout`'s.
final class RequestHeadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head = unwrapInboundIn(data) else { return context.fireChannelRead(data) }
        stop()
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.timer = nil
            context.triggerUserOutboundEvent(ErrorAnswerHandler.Answer(error: .requestTimeout), promise: nil)
        }
    }

    private func stop() {
        timer?.cancel()
        timer = nil
    }
}

extension APIError {
    static let requestTimeout = APIError(
        .requestTimeout, code: "request_timeout",
        message: "The request head did not arrive in time (--request-head-timeout).")
}
