import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOWebSocket

/// `WebSocket /ws`: a `queue_update` snapshot on connect, then every `queue_update`, `status_update` and
/// `progress_update` as it happens. A client's `{"type": "ping"}` is answered `{"type": "pong"}`.
struct ProgressSocketController: Sendable {
    let queue: JobQueue

    func addRoutes(to router: Router<AppRequestContext>) {
        router.ws("/ws") { inbound, outbound, context in
            try await serve(inbound: inbound, outbound: outbound, channel: context.requestContext.channel)
        }
    }

    private func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel)
        async throws
    {
        // Subscribe before the snapshot so no change between them is missed; the broadcaster holds them meanwhile.
        let broadcaster = queue.broadcaster
        let clientID = broadcaster.subscribe(channel)
        defer { broadcaster.unsubscribe(clientID) }
        let snapshot = try APIJSON.encode(try await queue.queueUpdate())
        try await outbound.write(.custom(ProgressBroadcaster.textFrame(snapshot)))
        broadcaster.goLive(clientID)
        // Broadcasts are written by the broadcaster; this task only answers pings until the client leaves.
        for try await message in inbound.messages(maxSize: 64 * 1024) {
            guard case .text(let text) = message, Self.isPing(text) else { continue }
            try await outbound.write(.text(#"{"type":"pong"}"#))
        }
    }

    static func isPing(_ text: String) -> Bool {
        (try? JSONDecoder().decode(ClientMessage.self, from: Data(text.utf8)))?.type == "ping"
    }
}

/// What a WebSocket client may send: only its `type` is read.
private struct ClientMessage: Decodable {
    let type: String
}
