import Foundation
import GRDB

/// The queue's persistent state: every read and every state change of jobs, each change one transaction.
///
/// Status changes go through `transition(_:to:)`, which enforces `JobStatus.canMove(to:)`: a change that is not
/// allowed (e.g. completing a job the client already cancelled) changes nothing and returns `nil`.
///
/// The active jobs (queued and processing) are cached between writes, so status reads of them need no query. Make
/// one repository per database and write only through it: a write elsewhere would not drop the cache.
public struct JobRepository: Sendable {
    let database: AppDatabase
    let activeJobsCache = ActiveJobsCache()

    public init(database: AppDatabase) {
        self.database = database
    }

    /// Every change goes through here: one transaction, then the cached active jobs are dropped (also after a
    /// failed write, which is harmless).
    private func write<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
        defer { activeJobsCache.invalidate() }
        return try await database.writer.write(updates)
    }

    /// The queue already holds `maxQueueSize` jobs.
    public struct QueueFull: Error, Equatable {
        public let queued: Int
    }

    // MARK: - Submitting

    /// Adds `job` at the end of the queue, unless `maxQueueSize` jobs are already queued.
    /// - Returns: the stored job (with its `sequence`) and its 1-based place in the queue.
    public func enqueue(_ job: Job, maxQueueSize: Int) async throws -> (job: Job, position: Int) {
        try await write { db in
            let queued = try Job.filter(Job.Columns.status == JobStatus.queued).fetchCount(db)
            guard queued < maxQueueSize else { throw QueueFull(queued: queued) }
            var job = job
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM job") ?? 0
            job.sequence = last + 1
            job.status = .queued
            try job.insert(db)
            return (job, queued + 1)
        }
    }

    // MARK: - Reading

    public func job(id: String) async throws -> Job? {
        try await database.writer.read { db in try Job.fetchOne(db, key: id) }
    }

    /// Queued and running jobs, read in one transaction; from the cache when no write happened since the last read.
    public func activeJobs() async throws -> ActiveJobs {
        try await activeJobs(beforeStoring: {})
    }

    /// `activeJobs()`, with a hook that runs between the read and the cache update (tests use it to write there).
    func activeJobs(beforeStoring hook: @Sendable () async throws -> Void) async throws -> ActiveJobs {
        let (cached, version) = activeJobsCache.lookup()
        if let cached { return cached }
        let jobs = try await database.writer.read { db in
            let active = try Job.filter([JobStatus.queued, JobStatus.processing].contains(Job.Columns.status))
                .order(Job.Columns.sequence).fetchAll(db)
            return ActiveJobs(
                queued: active.filter { $0.status == .queued },
                processing: active.filter { $0.status == .processing })
        }
        try await hook()
        activeJobsCache.store(jobs, readAt: version)
        return jobs
    }

    /// Queued jobs in the order they will start.
    public func queuedJobs() async throws -> [Job] {
        try await activeJobs().queued
    }

    /// Running jobs, oldest start first.
    public func processingJobs() async throws -> [Job] {
        try await activeJobs().processing
    }

    /// 1-based place of a queued job in the queue; `nil` when it is not queued.
    public func position(of id: String) async throws -> Int? {
        try await database.writer.read { db in
            guard let job = try Job.fetchOne(db, key: id), job.status == .queued else { return nil }
            let ahead = try Job.filter(Job.Columns.status == JobStatus.queued && Job.Columns.sequence < job.sequence)
                .fetchCount(db)
            return ahead + 1
        }
    }

    /// One page of history, newest first, optionally of one status; plus the total count.
    public func list(status: JobStatus?, limit: Int, offset: Int) async throws -> (jobs: [Job], total: Int) {
        try await database.writer.read { db in
            var request = Job.all()
            if let status { request = request.filter(Job.Columns.status == status) }
            let total = try request.fetchCount(db)
            let jobs = try request.order(Job.Columns.sequence.desc).limit(limit, offset: offset).fetchAll(db)
            return (jobs, total)
        }
    }

    /// How many jobs are in each status.
    public func countsByStatus() async throws -> [JobStatus: Int] {
        try await database.writer.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS count FROM job GROUP BY status")
            var counts: [JobStatus: Int] = [:]
            for row in rows {
                if let status = JobStatus(rawValue: row["status"]) { counts[status] = row["count"] }
            }
            return counts
        }
    }

    /// The most recent completed jobs (newest first), for throughput estimates.
    public func recentCompletedJobs(limit: Int) async throws -> [Job] {
        try await database.writer.read { db in
            try Job.filter(Job.Columns.status == JobStatus.completed)
                .order(Job.Columns.finishedAt.desc).limit(limit).fetchAll(db)
        }
    }

    // MARK: - State changes

    /// Moves the job to `status` and applies `change`, in one transaction, if the state machine allows it.
    /// - Returns: the updated job, or `nil` when the job is unknown or the move is not allowed.
    @discardableResult
    public func transition(
        _ id: String, to status: JobStatus,
        change: @escaping @Sendable (inout Job) -> Void = { _ in }
    ) async throws -> Job? {
        try await write { db in
            guard var job = try Job.fetchOne(db, key: id), job.status.canMove(to: status) else { return nil }
            job.status = status
            change(&job)
            try job.update(db)
            return job
        }
    }

    /// Starts the first queued job (FIFO): `processing`, `startedAt` now, one more attempt.
    /// - Returns: the started job, or `nil` when the queue is empty.
    public func claimNextJob(now: Date = Date()) async throws -> Job? {
        try await write { db in
            guard
                var job = try Job.filter(Job.Columns.status == JobStatus.queued)
                    .order(Job.Columns.sequence).fetchOne(db)
            else { return nil }
            job.status = .processing
            job.startedAt = now
            job.attempts += 1
            job.message = "Starting"
            try job.update(db)
            return job
        }
    }

    /// Changes only the message of a job that is not finished.
    @discardableResult
    public func updateMessage(_ id: String, message: String) async throws -> Job? {
        try await write { db in
            guard var job = try Job.fetchOne(db, key: id), !job.status.isTerminal else { return nil }
            job.message = message
            try job.update(db)
            return job
        }
    }

    /// `processing → completed` with the engine's output.
    public func complete(_ id: String, output: JobOutput, now: Date = Date()) async throws -> Job? {
        try await transition(id, to: .completed) { job in
            job.output = output
            job.message = "Video ready"
            job.finishedAt = now
        }
    }

    /// `processing → failed`.
    public func fail(_ id: String, failure: JobFailure, now: Date = Date()) async throws -> Job? {
        try await transition(id, to: .failed) { job in
            job.errorCode = failure.code
            job.errorMessage = failure.message
            job.message = failure.message
            job.finishedAt = now
        }
    }

    /// `queued|processing → cancelled`.
    public func cancel(_ id: String, now: Date = Date()) async throws -> Job? {
        try await transition(id, to: .cancelled) { job in
            let failure = JobFailure.cancelled()
            job.errorCode = failure.code
            job.errorMessage = failure.message
            job.message = "Cancelled"
            job.finishedAt = now
        }
    }

    /// `processing → queued`, keeping the job's place at the head of the queue.
    /// - Parameter countsAsAttempt: `false` when the service itself stopped the job (graceful shutdown), so the
    ///   start does not count against `maxAttempts`.
    public func requeue(_ id: String, message: String, countsAsAttempt: Bool) async throws -> Job? {
        try await transition(id, to: .queued) { job in
            job.message = message
            job.startedAt = nil
            if !countsAsAttempt { job.attempts = max(0, job.attempts - 1) }
        }
    }

    /// After a crash of the service: jobs still marked `processing` were interrupted. Those started fewer than
    /// `maxAttempts` times go back to the queue (in their old place); the others fail with `interrupted`.
    public func recoverInterruptedJobs(maxAttempts: Int, now: Date = Date()) async throws -> (
        requeued: [Job], failed: [Job]
    ) {
        try await write { db in
            var requeued: [Job] = []
            var failed: [Job] = []
            for var job in try Job.filter(Job.Columns.status == JobStatus.processing).fetchAll(db) {
                if job.attempts < maxAttempts {
                    job.status = .queued
                    job.startedAt = nil
                    job.message = "Re-queued after the server restarted"
                    requeued.append(job)
                } else {
                    job.status = .failed
                    job.errorCode = "interrupted"
                    job.errorMessage = "The job was interrupted \(job.attempts) times (server restarts); giving up."
                    job.message = job.errorMessage ?? ""
                    job.finishedAt = now
                    failed.append(job)
                }
                try job.update(db)
            }
            return (requeued, failed)
        }
    }

    // MARK: - Retention

    /// Finished jobs whose files have not been expired yet and that finished before `date`.
    public func jobsToExpire(finishedBefore date: Date) async throws -> [Job] {
        try await database.writer.read { db in
            try Job.filter(
                Job.Columns.expiredAt == nil && Job.Columns.finishedAt != nil && Job.Columns.finishedAt < date
            )
            .fetchAll(db)
        }
    }

    /// Records that retention deleted the job's files.
    public func markExpired(_ id: String, now: Date = Date()) async throws {
        _ = try await write { db in
            try Job.filter(key: id).updateAll(db, Job.Columns.expiredAt.set(to: now))
        }
    }
}
