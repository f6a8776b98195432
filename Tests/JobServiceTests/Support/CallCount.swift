import Synchronization

/// Counts calls of a closure that must be `Sendable`.
final class CallCount: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts one more call; returns how many there were, this one included.
    func next() -> Int { count.add(1, ordering: .relaxed).newValue }

    var value: Int { count.load(ordering: .relaxed) }
}
