import Foundation
import Synchronization

@testable import JobService

/// Jobs in memory, with the same state machine as `GRDBJobRepository` (the repository tests run against both), so
/// router tests need no database.
final class MemoryJobRepository: JobRepository {
    private struct State {
        var jobs: [String: Job] = [:]
        var lastSequence: Int64 = 0

        /// Every job, in submission order.
        var bySequence: [Job] { jobs.values.sorted { $0.sequence < $1.sequence } }

        var active: ActiveJobs {
            ActiveJobs(fairlyOrdering: jobs.values.filter { $0.status == .queued || $0.status == .processing })
        }
    }

    private let state = Mutex(State())

    func enqueueAll(_ jobs: [Job], maxQueueSize: Int, maxQueuedForOwner: Int?) async throws -> [(
        job: Job, position: Int
    )] {
        try state.withLock { state in
            try state.active.checkRoom(
                for: jobs.first?.owner, count: jobs.count, maxQueueSize: maxQueueSize,
                maxQueuedForOwner: maxQueuedForOwner)
            let stored = jobs.map { job in
                var job = job
                state.lastSequence += 1
                job.sequence = state.lastSequence
                job.status = .queued
                state.jobs[job.id] = job
                return job
            }
            let active = state.active
            return stored.map { ($0, active.position(of: $0.id)) }
        }
    }

    func jobs(inBatch batchID: String) async throws -> [Job] {
        state.withLock { $0.bySequence.filter { $0.batchId == batchID } }
    }

    func job(id: String) async throws -> Job? {
        state.withLock { $0.jobs[id] }
    }

    func activeJobs() async throws -> ActiveJobs {
        state.withLock { $0.active }
    }

    func list(status: JobStatus?, owner: String?, limit: Int, offset: Int) async throws -> (jobs: [Job], total: Int) {
        state.withLock { state in
            let matching = state.bySequence.reversed().filter {
                (status == nil || $0.status == status) && (owner == nil || $0.owner == owner)
            }
            return (Array(matching.dropFirst(offset).prefix(limit)), matching.count)
        }
    }

    func countsByStatus() async throws -> [JobStatus: Int] {
        state.withLock { state in state.jobs.values.reduce(into: [:]) { $0[$1.status, default: 0] += 1 } }
    }

    func recentCompletedJobs(limit: Int) async throws -> [Job] {
        state.withLock { state in
            let completed = state.jobs.values.filter { $0.status == .completed }
            return Array(
                completed.sorted { ($0.finishedAt ?? .distantPast) > ($1.finishedAt ?? .distantPast) }
                    .prefix(limit))
        }
    }

    func transition(_ id: String, to status: JobStatus, change: @escaping @Sendable (inout Job) -> Void)
        async throws -> Job?
    {
        update(id) { job in
            guard job.status.canMove(to: status) else { return false }
            job.status = status
            change(&job)
            return true
        }
    }

    func claimNextJob(now: Date) async throws -> Job? {
        state.withLock { state in
            guard var job = state.active.queued.first else { return nil }
            job.start(now: now)
            state.jobs[job.id] = job
            return job
        }
    }

    func updateMessage(_ id: String, message: String) async throws -> Job? {
        update(id) { job in
            guard !job.status.isTerminal else { return false }
            job.message = message
            return true
        }
    }

    func recordSegment(_ id: String, _ segment: EngineSegment) async throws -> Job? {
        update(id) { job in job.status == .processing && job.recordSegment(segment) }
    }

    func recoverInterruptedJobs(maxAttempts: Int, now: Date) async throws -> (requeued: [Job], failed: [Job]) {
        state.withLock { state in
            var requeued: [Job] = []
            var failed: [Job] = []
            for var job in state.bySequence where job.status == .processing {
                if job.recoverAfterInterruption(maxAttempts: maxAttempts, now: now) {
                    requeued.append(job)
                } else {
                    failed.append(job)
                }
                state.jobs[job.id] = job
            }
            return (requeued, failed)
        }
    }

    func jobsToExpire(finishedBefore date: Date) async throws -> [Job] {
        state.withLock { state in state.bySequence.filter { $0.expires(before: date) } }
    }

    func markExpired(_ id: String, now: Date) async throws {
        _ = update(id) { job in
            job.expiredAt = now
            job.live = nil
            return true
        }
    }

    /// Applies `change` to the job with `id` if it says so (returns `true`).
    private func update(_ id: String, _ change: (inout Job) -> Bool) -> Job? {
        state.withLock { state in
            guard var job = state.jobs[id], change(&job) else { return nil }
            state.jobs[id] = job
            return job
        }
    }
}
