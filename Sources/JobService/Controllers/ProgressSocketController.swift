import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOWebSocket

/// `WebSocket /ws`: a `queue_update` snapshot on connect, then every `queue_update`, `status_update`,
/// `progress_update` and `clip_ready` as it happens. A client's `{"type": "ping"}` is answered `{"type": "pong"}`. A request that
/// does not ask for the upgrade gets 426 `upgrade_required`.
struct ProgressSocketController: Sendable {
    let queue: JobQueue

    func addRoutes(to router: Router<AppRequestContext>) {
        router.ws(
            "/ws", shouldUpgrade: { request, _ in try Self.requireUpgrade(request) },
            onUpgrade: { inbound, outbound, context in
                try await serve(
                    inbound: inbound, outbound: outbound, channel: context.requestContext.channel,
                    caller: context.requestContext.caller)
            })
    }

    /// A plain `GET /ws` (no `Upgrade: websocket`) would otherwise get an empty 200; it gets a 426 JSON error
    /// saying what to do instead.
    static func requireUpgrade(_ request: Request) throws -> RouterShouldUpgrade {
        let upgrade = request.headers[values: .upgrade].flatMap { $0.split(separator: ",") }
        guard upgrade.contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() == "websocket" }) else {
            throw APIError(
                .upgradeRequired, code: "upgrade_required",
                message: "/ws is a WebSocket: connect with `Upgrade: websocket`.", headers: [.upgrade: "websocket"])
        }
        return .upgrade([:])
    }

    private func serve(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel, caller: Caller
    ) async throws {
        // Subscribe before the snapshot so no change between them is missed; the broadcaster holds them meanwhile.
        let broadcaster = queue.broadcaster
        let viewer = caller.seesAllJobs ? nil : caller.ownerID
        let clientID = broadcaster.subscribe(channel, onlyOwner: viewer)
        defer { broadcaster.unsubscribe(clientID) }
        let update = try await queue.queueUpdate()
        let snapshot = try APIJSON.encode(viewer.map(update.visible(to:)) ?? update)
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
