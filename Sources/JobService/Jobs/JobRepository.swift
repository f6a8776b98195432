import Foundation

/// Where jobs are kept: every read and every state change of jobs, each change atomic.
///
/// Status changes go through `transition(_:to:change:)`, which enforces `JobStatus.canMove(to:)`: a change that is
/// not allowed (e.g. completing a job the client already cancelled) changes nothing and returns `nil`. So racing
/// writers (a client cancelling while the engine finishes) cannot overwrite each other.
///
/// `GRDBJobRepository` (SQLite) is the service's; a PostgreSQL store would be another conformance. The tests hold an
/// in-memory one that honours the same state machine and passes the same tests.
public protocol JobRepository: Sendable {
    /// Adds all of `jobs` (one owner's, in order) or none: throws `QueueFull` when `maxQueueSize` jobs would be
    /// exceeded, `OwnerQueueFull` when their owner would have more than `maxQueuedForOwner` queued.
    /// - Returns: the stored jobs (`queued`, each with its `sequence`) and their 1-based places in the queue
    ///   (`FairTurns`).
    func enqueueAll(_ jobs: [Job], maxQueueSize: Int, maxQueuedForOwner: Int?) async throws -> [(
        job: Job, position: Int
    )]

    /// The jobs of a batch, in submission order (empty for an unknown batch).
    func jobs(inBatch batchID: String) async throws -> [Job]

    func job(id: String) async throws -> Job?

    /// Queued jobs in the order they will start, and running jobs oldest start first, at one moment.
    func activeJobs() async throws -> ActiveJobs

    /// One page of history, newest first, optionally of one status and of one owner (`nil`: every owner); plus
    /// the total count.
    func list(status: JobStatus?, owner: String?, limit: Int, offset: Int) async throws -> (jobs: [Job], total: Int)

    /// How many jobs are in each status.
    func countsByStatus() async throws -> [JobStatus: Int]

    /// The most recent completed jobs (newest first), for throughput estimates.
    func recentCompletedJobs(limit: Int) async throws -> [Job]

    /// Moves the job to `status` and applies `change`, atomically, if the state machine allows it.
    /// - Returns: the updated job, or `nil` when the job is unknown or the move is not allowed.
    func transition(_ id: String, to status: JobStatus, change: @escaping @Sendable (inout Job) -> Void)
        async throws -> Job?

    /// Starts the first queued job in `FairTurns` order (FIFO for one owner) with `Job.start(now:)`.
    /// - Returns: the started job, or `nil` when the queue is empty.
    func claimNextJob(now: Date) async throws -> Job?

    /// Changes only the message of a job that is not finished.
    func updateMessage(_ id: String, message: String) async throws -> Job?

    /// Records a finished clip's live segment (`Job.recordSegment`) of a job that is `processing`.
    /// - Returns: the updated job, or `nil` when the job is not running or the segment was not recorded.
    func recordSegment(_ id: String, _ segment: EngineSegment) async throws -> Job?

    /// After a crash of the service, applies `Job.recoverAfterInterruption` to every job still marked `processing`.
    func recoverInterruptedJobs(maxAttempts: Int, now: Date) async throws -> (requeued: [Job], failed: [Job])

    /// Finished jobs whose files have not been expired yet and that finished before `date`.
    func jobsToExpire(finishedBefore date: Date) async throws -> [Job]

    /// Records that retention deleted the job's files (its live stream is forgotten with them).
    func markExpired(_ id: String, now: Date) async throws
}

/// The queue already holds `maxQueueSize` jobs.
public struct QueueFull: Error, Equatable {
    public let queued: Int
}

/// The job's owner (an API key) already has its most queued jobs.
public struct OwnerQueueFull: Error, Equatable {
    public let queued: Int
}

extension ActiveJobs {
    /// Throws `QueueFull` or `OwnerQueueFull` when `count` more jobs of `owner` would not fit.
    func checkRoom(for owner: String?, count: Int = 1, maxQueueSize: Int, maxQueuedForOwner: Int?) throws {
        guard queued.count + count <= maxQueueSize else { throw QueueFull(queued: queued.count) }
        if let maxQueuedForOwner {
            let own = queued.count { $0.owner == owner }
            guard own + count <= maxQueuedForOwner else { throw OwnerQueueFull(queued: own) }
        }
    }

    /// The 1-based place of the queued job with `id` (0 when it is not queued).
    func position(of id: String) -> Int {
        (queued.firstIndex { $0.id == id } ?? -1) + 1
    }
}

// MARK: - The state changes, the same for every store

extension JobRepository {
    /// `enqueue` without a per-owner cap.
    public func enqueue(_ job: Job, maxQueueSize: Int) async throws -> (job: Job, position: Int) {
        try await enqueue(job, maxQueueSize: maxQueueSize, maxQueuedForOwner: nil)
    }

    /// `enqueueAll` for one job.
    public func enqueue(_ job: Job, maxQueueSize: Int, maxQueuedForOwner: Int?) async throws -> (
        job: Job, position: Int
    ) {
        try await enqueueAll([job], maxQueueSize: maxQueueSize, maxQueuedForOwner: maxQueuedForOwner)[0]
    }

    @discardableResult
    public func transition(_ id: String, to status: JobStatus) async throws -> Job? {
        try await transition(id, to: status) { _ in }
    }

    public func list(status: JobStatus?, limit: Int, offset: Int) async throws -> (jobs: [Job], total: Int) {
        try await list(status: status, owner: nil, limit: limit, offset: offset)
    }

    public func claimNextJob() async throws -> Job? {
        try await claimNextJob(now: Date())
    }

    public func recoverInterruptedJobs(maxAttempts: Int) async throws -> (requeued: [Job], failed: [Job]) {
        try await recoverInterruptedJobs(maxAttempts: maxAttempts, now: Date())
    }

    public func markExpired(_ id: String) async throws {
        try await markExpired(id, now: Date())
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
            job.live = nil
            if !countsAsAttempt { job.attempts = max(0, job.attempts - 1) }
        }
    }
}

extension Job {
    /// Claimed by the worker: `processing`, `startedAt` now, one more attempt, no live stream yet (a retried job
    /// never mixes the segments of two attempts).
    mutating func start(now: Date) {
        status = .processing
        startedAt = now
        attempts += 1
        message = "Starting"
        live = nil
    }

    /// A job found `processing` after a crash was interrupted: started fewer than `maxAttempts` times, it goes back
    /// to the queue (in its old place); otherwise it fails with `interrupted`.
    /// - Returns: whether it was re-queued.
    mutating func recoverAfterInterruption(maxAttempts: Int, now: Date) -> Bool {
        if attempts < maxAttempts {
            status = .queued
            startedAt = nil
            live = nil
            message = "Re-queued after the server restarted"
            return true
        }
        status = .failed
        errorCode = "interrupted"
        errorMessage = "The job was interrupted \(attempts) times (server restarts); giving up."
        message = errorMessage ?? ""
        finishedAt = now
        return false
    }

    /// Whether retention should delete the files of this job at `date`.
    func expires(before date: Date) -> Bool {
        guard expiredAt == nil, let finishedAt else { return false }
        return finishedAt < date
    }
}
