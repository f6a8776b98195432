import Foundation
import NIOCore
import NIOWebSocket
import Synchronization

/// Fans WebSocket messages out to every connected client.
///
/// A message is encoded once; on each event loop one task writes its frame straight into every client channel there
/// (no task, actor or async writer per client: with a thousand clients those hops were most of a broadcast's cost).
/// A client that cannot keep up (its channel is unwritable: NIO's outbound buffer holds 64 KiB it has not read) is
/// dropped and its connection closed at once (a close frame would only queue behind the unread bytes); it
/// reconnects and gets a fresh snapshot. `progress_update`s are limited to one per `progressInterval` per job.
/// With auth on, a client of a (non-admin) key gets only the messages about its own jobs, and `queue_update`s
/// listing only its own jobs' ids (the counts stay whole).
public final class ProgressBroadcaster: Sendable {
    private struct Client {
        let channel: any Channel
        /// The key whose jobs this client may hear about; `nil`: every job (auth off, or an admin key).
        let onlyOwner: String?
        /// A client registers before its snapshot is sent and goes live after it; meanwhile its messages wait here
        /// (`nil` once live).
        var held: [ByteBuffer]? = []
    }

    private let clients = Mutex<[UUID: Client]>([:])
    /// When each running job's last `progress_update` went out, on `clock`.
    private let lastProgress = Mutex<[String: Duration]>([:])
    private let progressInterval: Duration
    private let clock: any ServiceClock

    public init(progressInterval: Duration = .milliseconds(100), clock: any ServiceClock = SystemClock()) {
        self.progressInterval = progressInterval
        self.clock = clock
    }

    /// Registers a client's channel. Messages broadcast from now on are held until `goLive`, so the client can be
    /// sent a snapshot first without missing a change. Call `unsubscribe` when it leaves.
    public func subscribe(_ channel: any Channel, onlyOwner: String? = nil) -> UUID {
        let id = UUID()
        clients.withLock { $0[id] = Client(channel: channel, onlyOwner: onlyOwner) }
        return id
    }

    /// Sends what was held since `subscribe`, then every broadcast as it happens. Call after the snapshot was written.
    public func goLive(_ id: UUID) {
        clients.withLock { clients in
            guard let channel = clients[id]?.channel, let held = clients[id]?.held else { return }
            clients[id]?.held = nil
            // Scheduled under the lock, so no later broadcast can overtake these messages on the event loop.
            if !held.isEmpty { write(held.map(Self.textFrame), to: [(id, channel)], on: channel.eventLoop) }
        }
    }

    public func unsubscribe(_ id: UUID) {
        _ = clients.withLock { $0.removeValue(forKey: id) }
    }

    public var clientCount: Int { clients.withLock { $0.count } }

    /// Sends one message to every client.
    public func broadcast(_ message: some Encodable) {
        guard let bytes = try? APIJSON.encode(message) else { return }
        send { _ in [bytes] }
    }

    /// Sends a message about a job of `owner` to the clients that may see that job.
    public func broadcast(_ message: some Encodable, aboutJobOf owner: String?) {
        guard let bytes = try? APIJSON.encode(message) else { return }
        send { viewer in viewer == nil || viewer == owner ? [bytes] : [] }
    }

    /// Sends a job's `status_update` and the `queue_update` after it in one write: the status to the clients that
    /// may see the job, the queue to everyone (each key's client with only its own jobs' ids).
    public func broadcast(_ status: some Encodable, aboutJobOf owner: String?, then queue: QueueUpdateMessage) {
        guard let statusBytes = try? APIJSON.encode(status) else { return }
        send { viewer in
            let queueBytes = try? APIJSON.encode(viewer.map(queue.visible(to:)) ?? queue)
            return (viewer == nil || viewer == owner ? [statusBytes] : []) + [queueBytes].compactMap { $0 }
        }
    }

    /// Writes `messages(viewer)` to each client, where `viewer` is the client's `onlyOwner`; each distinct viewer's
    /// messages are made (encoded) once.
    private func send(_ messages: (String?) -> [ByteBuffer]) {
        var made: [String?: (bytes: [ByteBuffer], frames: [WebSocketFrame])] = [:]
        func messagesFor(_ viewer: String?) -> (bytes: [ByteBuffer], frames: [WebSocketFrame]) {
            if let done = made[viewer] { return done }
            let bytes = messages(viewer)
            made[viewer] = (bytes, bytes.map(Self.textFrame))
            return made[viewer]!
        }
        clients.withLock { clients in
            var byLoop: [ObjectIdentifier: (loop: any EventLoop, groups: [String?: [(UUID, any Channel)]])] = [:]
            for (id, client) in clients {
                let outgoing = messagesFor(client.onlyOwner)
                guard !outgoing.bytes.isEmpty else { continue }
                if client.held != nil {
                    clients[id]?.held?.append(contentsOf: outgoing.bytes)
                } else {
                    let loop = client.channel.eventLoop
                    byLoop[ObjectIdentifier(loop), default: (loop, [:])].groups[client.onlyOwner, default: []]
                        .append((id, client.channel))
                }
            }
            for (loop, groups) in byLoop.values {
                for (viewer, channels) in groups { write(messagesFor(viewer).frames, to: channels, on: loop) }
            }
        }
    }

    /// Whether a `progress_update` for `jobID` may go out now (at most one per `progressInterval`).
    /// `force` lets stage changes through always.
    public func admitProgress(for jobID: String, force: Bool = false) -> Bool {
        let now = clock.now
        return lastProgress.withLock { last in
            if !force, let previous = last[jobID], now - previous < progressInterval { return false }
            last[jobID] = now
            return true
        }
    }

    /// Forgets a finished job's rate-limit state.
    public func forget(_ jobID: String) {
        _ = lastProgress.withLock { $0.removeValue(forKey: jobID) }
    }

    /// Says goodbye (1001, going away) to every client and closes its connection (shutdown).
    public func finishAll() {
        let channels = clients.withLock { clients in
            defer { clients.removeAll() }
            return clients.values.map(\.channel)
        }
        for channel in channels { Self.close(channel, code: .goingAway) }
    }

    // MARK: - Writing on the event loop

    private func write(
        _ frames: [WebSocketFrame], to channels: [(id: UUID, channel: any Channel)], on loop: any EventLoop
    ) {
        loop.execute {
            for (id, channel) in channels {
                guard channel.isActive else { continue }
                guard channel.isWritable else {
                    self.unsubscribe(id)
                    channel.close(promise: nil)
                    continue
                }
                for frame in frames { channel.write(frame, promise: nil) }
                channel.flush()
            }
        }
    }

    private static func close(_ channel: any Channel, code: WebSocketErrorCode) {
        var data = channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let goodbye = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        channel.writeAndFlush(goodbye).whenComplete { _ in channel.close(promise: nil) }
    }

    /// A text frame around already encoded JSON; every client's frame shares the same bytes.
    static func textFrame(_ json: ByteBuffer) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .text, data: json)
    }
}
