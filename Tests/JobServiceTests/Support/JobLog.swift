import Foundation
import Synchronization

@testable import JobService

/// Every job change a queue announced since the log was made, and waits for one. Make it before the change can
/// happen (before submitting): a wait then finds the change whether it came before or after the wait began.
final class JobLog: Sendable {
    private struct Waiter {
        let matches: @Sendable (Job) -> Bool
        let continuation: CheckedContinuation<Job?, Never>
    }

    private struct State {
        var history: [Job] = []
        var waiters: [UUID: Waiter] = [:]
        /// Waits cancelled before they were registered.
        var cancelled: Set<UUID> = []

        /// Takes the waiter `id` out, or remembers that it was cancelled before it got in.
        mutating func cancel(_ id: UUID) -> Waiter? {
            if let waiter = waiters.removeValue(forKey: id) { return waiter }
            cancelled.insert(id)
            return nil
        }
    }

    private let state = Mutex(State())

    /// Starts recording `queue`'s announcements.
    init(_ queue: JobQueue) {
        let updates = queue.updates()
        Task { [weak self] in
            for await job in updates {
                guard let self else { return }
                self.record(job)
            }
        }
    }

    /// Every change recorded so far, in order.
    var history: [Job] { state.withLock { $0.history } }

    /// Where in `history` the job with `id` was first announced in `status`.
    func index(of id: String, _ status: JobStatus) -> Int? {
        history.firstIndex { $0.id == id && $0.status == status }
    }

    private func record(_ job: Job) {
        let due = state.withLock { state in
            state.history.append(job)
            let due = state.waiters.filter { $0.value.matches(job) }
            for id in due.keys { state.waiters[id] = nil }
            return Array(due.values)
        }
        for waiter in due { waiter.continuation.resume(returning: job) }
    }

    /// The first announcement of the job with `id` in one of `statuses` (and matching `condition`); waits for it
    /// if there is none yet, for `timeout` at most.
    @discardableResult
    func waitFor(
        _ id: String, _ statuses: Set<JobStatus>, timeout: Duration = .seconds(90),
        where condition: @escaping @Sendable (Job) -> Bool = { _ in true }
    ) async throws -> Job {
        let matches: @Sendable (Job) -> Bool = { $0.id == id && statuses.contains($0.status) && condition($0) }
        return try await TestSupport.withTimeout(timeout) {
            guard let job = await self.first(where: matches) else { throw CancellationError() }
            return job
        }
    }

    private func first(where matches: @escaping @Sendable (Job) -> Bool) async -> Job? {
        let id = UUID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Job?, Never>) in
                let found = state.withLock { state -> Job?? in
                    if state.cancelled.remove(id) != nil { return .some(nil) }
                    if let job = state.history.first(where: matches) { return .some(job) }
                    state.waiters[id] = Waiter(matches: matches, continuation: continuation)
                    return nil
                }
                if let found { continuation.resume(returning: found) }
            }
        } onCancel: {
            state.withLock { $0.cancel(id) }?.continuation.resume(returning: nil)
        }
    }
}
