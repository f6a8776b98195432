import Foundation
import GRDB

/// The jobs in SQLite (GRDB): each change one transaction.
///
/// The active jobs (queued and processing) are cached between writes, so status reads of them need no query. The
/// database connection is private, so every write goes through here and drops the cache; make one repository per
/// database.
public struct GRDBJobRepository: JobRepository {
    private let writer: any DatabaseWriter
    let activeJobsCache = ActiveJobsCache()

    /// Opens (creating and migrating if needed) the database at `path`.
    public static func open(path: String) throws -> GRDBJobRepository {
        GRDBJobRepository(writer: try AppDatabase.openPool(path: path))
    }

    /// A fresh, empty database in memory.
    public static func inMemory() throws -> GRDBJobRepository {
        GRDBJobRepository(writer: try AppDatabase.makeInMemoryQueue())
    }

    init(writer: any DatabaseWriter) {
        self.writer = writer
    }

    /// Every change goes through here: one transaction, then the cached active jobs are dropped (also after a
    /// failed write, which is harmless).
    private func write<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
        defer { activeJobsCache.invalidate() }
        return try await writer.write(updates)
    }

    private func read<T: Sendable>(_ value: @Sendable (Database) throws -> T) async throws -> T {
        try await writer.read(value)
    }

    // MARK: - Submitting

    public func enqueueAll(_ jobs: [Job], maxQueueSize: Int, maxQueuedForOwner: Int?) async throws -> [(
        job: Job, position: Int
    )] {
        try await write { db in
            let active = try Self.activeJobs(db)
            try active.checkRoom(
                for: jobs.first?.owner, count: jobs.count, maxQueueSize: maxQueueSize,
                maxQueuedForOwner: maxQueuedForOwner)
            var last = try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM job") ?? 0
            var stored: [Job] = []
            for var job in jobs {
                last += 1
                job.sequence = last
                job.status = .queued
                try job.insert(db)
                stored.append(job)
            }
            let after = ActiveJobs(fairlyOrdering: active.all + stored)
            return stored.map { ($0, after.position(of: $0.id)) }
        }
    }

    public func jobs(inBatch batchID: String) async throws -> [Job] {
        try await read { db in
            try Job.filter(Job.Columns.batchId == batchID).order(Job.Columns.sequence).fetchAll(db)
        }
    }

    // MARK: - Reading

    public func job(id: String) async throws -> Job? {
        try await read { db in try Job.fetchOne(db, key: id) }
    }

    /// Read in one transaction; from the cache when no write happened since the last read.
    public func activeJobs() async throws -> ActiveJobs {
        try await activeJobs(beforeStoring: {})
    }

    /// `activeJobs()`, with a hook that runs between the read and the cache update (tests use it to write there).
    func activeJobs(beforeStoring hook: @Sendable () async throws -> Void) async throws -> ActiveJobs {
        let (cached, version) = activeJobsCache.lookup()
        if let cached { return cached }
        let jobs = try await read { db in try Self.activeJobs(db) }
        try await hook()
        activeJobsCache.store(jobs, readAt: version)
        return jobs
    }

    private static func activeJobs(_ db: Database) throws -> ActiveJobs {
        ActiveJobs(
            fairlyOrdering: try Job.filter([JobStatus.queued, JobStatus.processing].contains(Job.Columns.status))
                .fetchAll(db))
    }

    public func list(status: JobStatus?, owner: String?, limit: Int, offset: Int) async throws -> (
        jobs: [Job], total: Int
    ) {
        try await read { db in
            var request = Job.all()
            if let status { request = request.filter(Job.Columns.status == status) }
            if let owner { request = request.filter(Job.Columns.owner == owner) }
            let total = try request.fetchCount(db)
            let jobs = try request.order(Job.Columns.sequence.desc).limit(limit, offset: offset).fetchAll(db)
            return (jobs, total)
        }
    }

    public func countsByStatus() async throws -> [JobStatus: Int] {
        try await read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS count FROM job GROUP BY status")
            var counts: [JobStatus: Int] = [:]
            for row in rows {
                if let status = JobStatus(rawValue: row["status"]) { counts[status] = row["count"] }
            }
            return counts
        }
    }

    public func recentCompletedJobs(limit: Int) async throws -> [Job] {
        try await read { db in
            try Job.filter(Job.Columns.status == JobStatus.completed)
                .order(Job.Columns.finishedAt.desc).limit(limit).fetchAll(db)
        }
    }

    // MARK: - State changes

    public func transition(
        _ id: String, to status: JobStatus, change: @escaping @Sendable (inout Job) -> Void
    ) async throws -> Job? {
        try await write { db in
            guard var job = try Job.fetchOne(db, key: id), job.status.canMove(to: status) else { return nil }
            job.status = status
            change(&job)
            try job.update(db)
            return job
        }
    }

    public func claimNextJob(now: Date) async throws -> Job? {
        try await write { db in
            guard var job = try Self.activeJobs(db).queued.first else { return nil }
            job.start(now: now)
            try job.update(db)
            return job
        }
    }

    public func updateMessage(_ id: String, message: String) async throws -> Job? {
        try await write { db in
            guard var job = try Job.fetchOne(db, key: id), !job.status.isTerminal else { return nil }
            job.message = message
            try job.update(db)
            return job
        }
    }

    public func recordSegment(_ id: String, _ segment: EngineSegment) async throws -> Job? {
        try await write { db in
            guard var job = try Job.fetchOne(db, key: id), job.status == .processing, job.recordSegment(segment)
            else { return nil }
            try job.update(db)
            return job
        }
    }

    public func recoverInterruptedJobs(maxAttempts: Int, now: Date) async throws -> (requeued: [Job], failed: [Job]) {
        try await write { db in
            var requeued: [Job] = []
            var failed: [Job] = []
            for var job in try Job.filter(Job.Columns.status == JobStatus.processing).fetchAll(db) {
                if job.recoverAfterInterruption(maxAttempts: maxAttempts, now: now) {
                    requeued.append(job)
                } else {
                    failed.append(job)
                }
                try job.update(db)
            }
            return (requeued, failed)
        }
    }

    // MARK: - Retention

    public func jobsToExpire(finishedBefore date: Date) async throws -> [Job] {
        try await read { db in
            try Job.filter(
                Job.Columns.expiredAt == nil && Job.Columns.finishedAt != nil && Job.Columns.finishedAt < date
            )
            .fetchAll(db)
        }
    }

    public func markExpired(_ id: String, now: Date) async throws {
        _ = try await write { db in
            try Job.filter(key: id).updateAll(db, Job.Columns.expiredAt.set(to: now), Job.Columns.live.set(to: nil))
        }
    }
}
