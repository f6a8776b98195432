import Foundation
import Synchronization

/// Hands values to any number of async streams, in order, each with an unbounded buffer (nothing is dropped).
final class Observers<Value: Sendable>: Sendable {
    /// `nil` once finished.
    private let sinks = Mutex<[UUID: AsyncStream<Value>.Continuation]?>([:])

    /// A new stream that receives `first` (if any), then every value yielded from now on, until `finish()`.
    func stream(startingWith first: Value? = nil) -> AsyncStream<Value> {
        let (stream, sink) = AsyncStream.makeStream(of: Value.self)
        let id = UUID()
        if let first { sink.yield(first) }
        let isOpen = sinks.withLock { sinks in
            sinks?[id] = sink
            return sinks != nil
        }
        guard isOpen else {
            sink.finish()
            return stream
        }
        sink.onTermination = { [weak self] _ in
            _ = self?.sinks.withLock { $0?.removeValue(forKey: id) }
        }
        return stream
    }

    func yield(_ value: Value) {
        for sink in sinks.withLock({ $0.map { Array($0.values) } ?? [] }) { sink.yield(value) }
    }

    /// Ends every stream, and those made later right after their first value.
    func finish() {
        let ended = sinks.withLock { sinks in
            defer { sinks = nil }
            return sinks.map { Array($0.values) } ?? []
        }
        for sink in ended { sink.finish() }
    }
}
