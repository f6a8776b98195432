import Synchronization

/// Runs async work one piece at a time, in the order it was submitted.
///
/// Job notifications read the database before they broadcast; without this, a job's `queued` message could be
/// overtaken by its `processing` message computed a moment later. Each piece runs in its own unstructured task, so a
/// cancelled caller does not cancel it (GRDB refuses reads in cancelled tasks).
final class SerialTasks: Sendable {
    private let tail = Mutex<Task<Void, Never>?>(nil)

    /// Runs `work` after everything submitted before it; returns its result when it is done.
    func run<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = tail.withLock { tail in
            let previous = tail
            let task = Task {
                await previous?.value
                return try await work()
            }
            tail = Task { _ = try? await task.value }
            return task
        }
        return try await task.value
    }
}
