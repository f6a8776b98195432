import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// `WebSocket /ws`: a `queue_update` snapshot on connect, then every `queue_update`, `status_update` and
/// `progress_update` as it happens. A client's `{"type": "ping"}` is answered `{"type": "pong"}`.
struct ProgressSocketController<Context: WebSocketRequestContext & RequestContext>: Sendable {
    let broadcaster: ProgressBroadcaster
    let reporter: StatusReporter
    let logger: Logger

    func addRoutes(to router: Router<Context>) {
        router.ws("/ws") { inbound, outbound, _ in
            try await serve(inbound: inbound, outbound: outbound)
        }
    }

    private func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        // Subscribe before the snapshot so no change between them is missed.
        let (clientID, messages) = broadcaster.subscribe()
        defer { broadcaster.unsubscribe(clientID) }
        try await outbound.write(Self.textFrame(try APIJSON.encode(try await reporter.queueUpdate())))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in messages {
                    try await outbound.write(Self.textFrame(message))
                }
            }
            group.addTask {
                for try await message in inbound.messages(maxSize: 64 * 1024) {
                    guard case .text(let text) = message, Self.isPing(text) else { continue }
                    try await outbound.write(.text(#"{"type":"pong"}"#))
                }
            }
            // The client left (inbound ended) or a write failed: stop the other task.
            try await group.next()
            group.cancelAll()
        }
    }

    /// A text frame around already encoded JSON, so the broadcast's bytes go out without a copy per client.
    static func textFrame(_ json: ByteBuffer) -> WebSocketOutboundWriter.OutboundFrame {
        .custom(WebSocketFrame(fin: true, opcode: .text, data: json))
    }

    static func isPing(_ text: String) -> Bool {
        (try? JSONDecoder().decode(ClientMessage.self, from: Data(text.utf8)))?.type == "ping"
    }
}

/// What a WebSocket client may send: only its `type` is read.
private struct ClientMessage: Decodable {
    let type: String
}
