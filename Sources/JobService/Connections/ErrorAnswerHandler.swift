import NIOCore
import NIOHTTP1

/// Ends a connection with a JSON error answer (`{"error": ...}`) instead of a silent close: for a request head NIO
/// cannot parse (400 `bad_request`; 431 `headers_too_large` above `--max-header-bytes` / `--max-header-count`),
/// and for the handlers after it, which send it an `Answer` (408 on the head timeout, 403 for a refused upgrade).
///
/// It sits right after NIO's request decoder. After answering (`Connection: close`) it drops the rest of the input
/// unparsed and closes when the client has closed its side, or after `linger` at the latest: closing while the
/// client still sends would reset the connection, and the client could lose the answer. (It does not half-close:
/// NIO then closes the channel on the client's end of input without telling the pipeline, and Hummingbird logs
/// that as an error.) After a WebSocket upgrade (101) it only passes data on.
final class ErrorAnswerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// A user outbound event: end the connection with `error`.
    struct Answer: Sendable {
        let error: APIError
    }

    private enum State {
        /// Between responses.
        case idle
        /// A response has started; an error now can only close the connection.
        case responding
        /// Answered; waiting for the client to close (or `linger`).
        case answered
        /// Upgraded to WebSocket: no longer HTTP.
        case upgraded
    }

    private let linger: TimeAmount
    private var state = State.idle
    private var inputClosed = false
    private var lingerTimer: Scheduled<Void>?

    init(linger: TimeAmount) {
        self.linger = linger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state != .answered else { return }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch state {
        case .answered:
            return // the decoder's complaints about the rest of the input
        case .upgraded:
            context.fireErrorCaught(error)
        case .idle, .responding:
            guard let parserError = error as? HTTPParserError else { return context.fireErrorCaught(error) }
            answer(context, Self.answer(for: parserError))
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let answer = event as? Answer else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        self.answer(context, answer.error)
        promise?.succeed(())
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch state {
        case .upgraded:
            context.write(data, promise: promise)
        case .answered:
            promise?.fail(ChannelError.outputClosed) // a late response to a request already answered
        case .idle, .responding:
            switch unwrapOutboundIn(data) {
            case .head(let head) where head.status == .switchingProtocols: state = .upgraded
            case .head(let head) where head.status.code < 200: break // 100 Continue
            case .head: state = .responding
            case .body: break
            case .end: state = .idle
            }
            context.write(data, promise: promise)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            if state == .answered { return finish(context) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
    }

    /// Writes `error` (unless a response is already under way) and waits for the client to close.
    private func answer(_ context: ChannelHandlerContext, _ error: APIError) {
        guard state == .idle || state == .responding else { return }
        let canAnswer = state == .idle
        state = .answered
        if canAnswer {
            let body = error.jsonBody
            let head = HTTPResponseHead(
                version: .http1_1,
                status: HTTPResponseStatus(statusCode: Int(error.status.code), reasonPhrase: error.status.reasonPhrase),
                headers: [
                    "Content-Type": APIError.contentType, "Content-Length": "\(body.readableBytes)",
                    "Connection": "close",
                ])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        if inputClosed { return finish(context) }
        lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: linger) { self.finish(context) }
    }

    /// Closes the connection. Hummingbird's upgrade handler (still there before the first request head) takes an end
    /// of input quietly, where it would log a plain close as an error: so it is told the input ended first.
    private func finish(_ context: ChannelHandlerContext) {
        cancelTimer()
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        context.close(promise: nil)
    }

    private func cancelTimer() {
        lingerTimer?.cancel()
        lingerTimer = nil
    }

    /// The answer to a request NIO could not parse.
    static func answer(for error: HTTPParserError) -> APIError {
        let reason: String
        switch error {
        case .headerOverflow:
            return APIError(
                .requestHeaderFieldsTooLarge, code: "headers_too_large",
                message: "The request head has too many or too large header fields.")
        case .invalidContentLength: reason = "Content-Length is not a valid length"
        case .unexpectedContentLength: reason = "Content-Length is repeated, or sent with Transfer-Encoding"
        case .invalidMethod: reason = "the method is not valid"
        case .invalidURL: reason = "the request target is not valid"
        case .invalidVersion, .invalidConstant: reason = "the request line is not valid"
        case .invalidHeaderToken: reason = "a header field is not valid"
        case .invalidChunkSize: reason = "a chunk size is not valid"
        default: reason = "it is not valid HTTP/1.1 (Transfer-Encoding with Content-Length, for example)"
        }
        return APIError(.badRequest, code: "bad_request", message: "Malformed request: \(reason).")
    }
}
