import Foundation

@testable import JobService

/// Jobs in memory whose claims and cancels each pass a `Checkpoint` first, so a test decides in which order the
/// worker's claim and a client's cancel happen.
final class HeldJobRepository: JobRepository {
    let base = MemoryJobRepository()
    /// Passed before each `claimNextJob`.
    let claims = Checkpoint()
    /// Passed before each move to `cancelled`.
    let cancels = Checkpoint()

    func claimNextJob(now: Date) async throws -> Job? {
        await claims.pass()
        return try await base.claimNextJob(now: now)
    }

    func transition(_ id: String, to status: JobStatus, change: @escaping @Sendable (inout Job) -> Void)
        async throws -> Job?
    {
        if status == .cancelled { await cancels.pass() }
        return try await base.transition(id, to: status, change: change)
    }

    func enqueueAll(_ jobs: [Job], maxQueueSize: Int, maxQueuedForOwner: Int?) async throws -> [(
        job: Job, position: Int
    )] {
        try await base.enqueueAll(jobs, maxQueueSize: maxQueueSize, maxQueuedForOwner: maxQueuedForOwner)
    }

    func jobs(inBatch batchID: String) async throws -> [Job] { try await base.jobs(inBatch: batchID) }
    func job(id: String) async throws -> Job? { try await base.job(id: id) }
    func activeJobs() async throws -> ActiveJobs { try await base.activeJobs() }
    func list(status: JobStatus?, owner: String?, limit: Int, offset: Int) async throws -> (jobs: [Job], total: Int) {
        try await base.list(status: status, owner: owner, limit: limit, offset: offset)
    }
    func countsByStatus() async throws -> [JobStatus: Int] { try await base.countsByStatus() }
    func recentCompletedJobs(limit: Int) async throws -> [Job] { try await base.recentCompletedJobs(limit: limit) }
    func updateMessage(_ id: String, message: String) async throws -> Job? {
        try await base.updateMessage(id, message: message)
    }
    func recordSegment(_ id: String, _ segment: EngineSegment) async throws -> Job? {
        try await base.recordSegment(id, segment)
    }
    func recoverInterruptedJobs(maxAttempts: Int, now: Date) async throws -> (requeued: [Job], failed: [Job]) {
        try await base.recoverInterruptedJobs(maxAttempts: maxAttempts, now: now)
    }
    func jobsToExpire(finishedBefore date: Date) async throws -> [Job] {
        try await base.jobsToExpire(finishedBefore: date)
    }
    func markExpired(_ id: String, now: Date) async throws { try await base.markExpired(id, now: now) }
}
