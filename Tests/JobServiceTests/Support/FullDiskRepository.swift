import Foundation
import GRDB
import Synchronization

@testable import JobService

/// Jobs in memory on a disk that is full for a while: the next `failingWrites` state changes (`transition`: a job's
/// end, a cancel, a re-queue) fail as SQLite's writes do then (`SQLITE_FULL`, "database or disk is full"); after that
/// they land again. Everything else works (reads do on a full disk; claims and new jobs are not what is tested).
final class FullDiskRepository: JobRepository {
    private let base = MemoryJobRepository()
    private let failuresLeft: Mutex<Int>

    init(failingWrites: Int) {
        failuresLeft = Mutex(failingWrites)
    }

    /// How many writes will still fail.
    var writesStillFailing: Int { failuresLeft.withLock { $0 } }

    private func write() throws {
        let full = failuresLeft.withLock { left in
            guard left > 0 else { return false }
            left -= 1
            return true
        }
        if full { throw DatabaseError(resultCode: .SQLITE_FULL, message: "database or disk is full") }
    }

    func enqueueAll(_ jobs: [Job], maxQueueSize: Int, maxQueuedForOwner: Int?) async throws -> [(
        job: Job, position: Int
    )] {
        try await base.enqueueAll(jobs, maxQueueSize: maxQueueSize, maxQueuedForOwner: maxQueuedForOwner)
    }

    func jobs(inBatch batchID: String) async throws -> [Job] { try await base.jobs(inBatch: batchID) }

    func transition(_ id: String, to status: JobStatus, change: @escaping @Sendable (inout Job) -> Void)
        async throws -> Job?
    {
        try write()
        return try await base.transition(id, to: status, change: change)
    }

    func job(id: String) async throws -> Job? { try await base.job(id: id) }
    func activeJobs() async throws -> ActiveJobs { try await base.activeJobs() }
    func list(status: JobStatus?, owner: String?, limit: Int, offset: Int) async throws -> (jobs: [Job], total: Int) {
        try await base.list(status: status, owner: owner, limit: limit, offset: offset)
    }
    func countsByStatus() async throws -> [JobStatus: Int] { try await base.countsByStatus() }
    func recentCompletedJobs(limit: Int) async throws -> [Job] { try await base.recentCompletedJobs(limit: limit) }
    func claimNextJob(now: Date) async throws -> Job? { try await base.claimNextJob(now: now) }
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
