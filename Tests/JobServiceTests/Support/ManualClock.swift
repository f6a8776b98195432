import Foundation
import Synchronization

@testable import JobService

/// A clock that moves only when a test says so (`advance(by:)`); sleepers wake once it passed their deadline.
final class ManualClock: ServiceClock {
    private struct Sleeper {
        let deadline: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Duration = .zero
        var sleepers: [UUID: Sleeper] = [:]
        /// Sleeps cancelled before they were registered.
        var cancelled: Set<UUID> = []
        var sleeperWaiters: [(id: UUID, lasting: Duration?, continuation: CheckedContinuation<Void, Never>)] = []
        /// Waits for a sleeper cancelled before they were registered.
        var cancelledSleeperWaits: Set<UUID> = []

        /// Takes the sleeper `id` out, or remembers that it was cancelled before it got in.
        mutating func cancel(_ id: UUID) -> Sleeper? {
            if let sleeper = sleepers.removeValue(forKey: id) { return sleeper }
            cancelled.insert(id)
            return nil
        }

        /// Whether someone sleeps (for exactly `lasting` from now, if given).
        func hasSleeper(lasting: Duration?) -> Bool {
            sleepers.values.contains { lasting == nil || $0.deadline - now == lasting }
        }
    }

    private let state = Mutex(State())

    var now: Duration { state.withLock { $0.now } }

    func sleep(for duration: Duration) async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    if state.cancelled.remove(id) != nil {
                        continuation.resume(throwing: CancellationError())
                        return []
                    }
                    if duration <= .zero {
                        continuation.resume()
                        return []
                    }
                    state.sleepers[id] = Sleeper(deadline: state.now + duration, continuation: continuation)
                    let (due, waiting) = (
                        state.sleeperWaiters.filter { state.hasSleeper(lasting: $0.lasting) },
                        state.sleeperWaiters.filter { !state.hasSleeper(lasting: $0.lasting) }
                    )
                    state.sleeperWaiters = waiting
                    return due.map(\.continuation)
                }
                for waiter in waiters { waiter.resume() }
            }
        } onCancel: {
            state.withLock { $0.cancel(id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time on and wakes every sleeper whose deadline passed.
    func advance(by duration: Duration) {
        let due = state.withLock { state in
            state.now += duration
            let due = state.sleepers.filter { $0.value.deadline <= state.now }
            for id in due.keys { state.sleepers[id] = nil }
            return Array(due.values)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits until something sleeps on this clock (for exactly `lasting` from now, if given), so that an
    /// `advance` reaches it. Returns early when the task is cancelled (a test's time-out guard).
    func waitForSleeper(lasting: Duration? = nil) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let goOn = state.withLock { state in
                    if state.cancelledSleeperWaits.remove(id) != nil { return true }
                    let hasSleeper = state.hasSleeper(lasting: lasting)
                    if !hasSleeper { state.sleeperWaiters.append((id, lasting, continuation)) }
                    return hasSleeper
                }
                if goOn { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let index = state.sleeperWaiters.firstIndex(where: { $0.id == id }) else {
                    state.cancelledSleeperWaits.insert(id)
                    return nil
                }
                return state.sleeperWaiters.remove(at: index).continuation
            }
            waiter?.resume()
        }
    }
}
