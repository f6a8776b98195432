import Foundation
import NIOCore
import Synchronization

/// Fans WebSocket messages out to every connected client.
///
/// Each client gets its own bounded buffer (the newest `bufferSize` messages), drained by its own task, so a slow
/// client loses old messages instead of slowing the others. `progress_update`s are limited to one per
/// `progressInterval` per job. A message is encoded once into a `ByteBuffer`; every client's copy shares its bytes.
public final class ProgressBroadcaster: Sendable {
    private let clients = Mutex<[UUID: AsyncStream<ByteBuffer>.Continuation]>([:])
    private let lastProgress = Mutex<[String: ContinuousClock.Instant]>([:])
    private let bufferSize: Int
    private let progressInterval: Duration

    public init(bufferSize: Int = 256, progressInterval: Duration = .milliseconds(100)) {
        self.bufferSize = bufferSize
        self.progressInterval = progressInterval
    }

    /// Registers a client. Call `unsubscribe` when it leaves.
    public func subscribe() -> (id: UUID, messages: AsyncStream<ByteBuffer>) {
        let (stream, sink) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingNewest(bufferSize))
        let id = UUID()
        clients.withLock { $0[id] = sink }
        return (id, stream)
    }

    public func unsubscribe(_ id: UUID) {
        clients.withLock { $0.removeValue(forKey: id) }?.finish()
    }

    public var clientCount: Int { clients.withLock { $0.count } }

    /// Sends one message to every client.
    public func broadcast(_ message: some Encodable) {
        guard let bytes = try? APIJSON.encode(message) else { return }
        let sinks = clients.withLock { Array($0.values) }
        for sink in sinks { sink.yield(bytes) }
    }

    /// Whether a `progress_update` for `jobID` may go out now (at most one per `progressInterval`).
    /// `force` lets stage changes through always.
    public func admitProgress(for jobID: String, force: Bool = false) -> Bool {
        let now = ContinuousClock.now
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

    /// Ends every client's stream (shutdown).
    public func finishAll() {
        let sinks = clients.withLock { clients in
            defer { clients.removeAll() }
            return Array(clients.values)
        }
        for sink in sinks { sink.finish() }
    }
}
