import NIOCore
import NIOPosix

/// A bare TCP connection to a test server, for what HTTP clients refuse to send (partial heads, broken framing,
/// foreign `Host` and `Origin`) and for reading exactly what comes back. One task at a time uses a connection.
final class RawConnection: @unchecked Sendable {
    private let channel: any Channel
    private var received: AsyncStream<ByteBuffer>.Iterator
    private var buffer: [UInt8] = []

    /// One HTTP answer as read off the wire.
    struct Answer: Sendable {
        let head: String
        let body: String
        var statusLine: String { String(head.prefix { $0 != "\r" }) }
        var status: Int? { Int(statusLine.split(separator: " ").dropFirst().first ?? "") }
        var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
        func header(_ name: String) -> String? {
            head.split(separator: "\r\n").dropFirst().first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                .map { String($0.drop { $0 != ":" }.dropFirst()).trimmingCharacters(in: .whitespaces) }
        }
    }

    init(port: Int) async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(continuation: continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        received = stream.makeAsyncIterator()
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// The next complete answer (head and `Content-Length` body); `nil` if the server closes before one is complete.
    func answer() async -> Answer? {
        while true {
            if let answer = takeAnswer() { return answer }
            guard let chunk = await received.next() else { return nil }
            buffer += Array(chunk.readableBytesView)
        }
    }

    /// Whether the server closes the connection (after anything it still sends).
    func waitUntilClosed() async -> [UInt8] {
        while let chunk = await received.next() { buffer += Array(chunk.readableBytesView) }
        return buffer
    }

    func close() async {
        try? await channel.close()
    }

    private func takeAnswer() -> Answer? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = buffer.indices.first(where: { buffer[$0...].starts(with: separator) }) else { return nil }
        let head = String(decoding: buffer[..<end], as: UTF8.self)
        let partial = Answer(head: head, body: "")
        let length = partial.header("Content-Length").flatMap(Int.init) ?? 0
        let bodyStart = end + separator.count
        guard buffer.count >= bodyStart + length else { return nil }
        let body = String(decoding: buffer[bodyStart..<(bodyStart + length)], as: UTF8.self)
        buffer.removeFirst(bodyStart + length)
        return Answer(head: head, body: body)
    }

    /// Hands what arrives to the stream; ends it when the connection closes.
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let continuation: AsyncStream<ByteBuffer>.Continuation

        init(continuation: AsyncStream<ByteBuffer>.Continuation) {
            self.continuation = continuation
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            continuation.yield(unwrapInboundIn(data))
        }

        func channelInactive(context: ChannelHandlerContext) {
            continuation.finish()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil) // a reset: the stream ends with what came before it
        }
    }
}
