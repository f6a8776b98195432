import Foundation
import Testing

@testable import JobService

/// The SQLite repository's cache of active jobs: read once, dropped by every write, never keeps a stale snapshot.
@Suite struct ActiveJobsCacheTests {
    let repository: GRDBJobRepository

    init() throws {
        repository = try GRDBJobRepository.inMemory()
    }

    private func makeJob() -> Job { TestSupport.makeJob() }

    private func enqueue(_ count: Int) async throws -> [Job] {
        try await TestSupport.enqueue(count, into: repository)
    }

    /// What the database holds now, read past the cache (history queries are never cached).
    private func storedActiveJobs() async throws -> ActiveJobs {
        func stored(_ status: JobStatus) async throws -> [Job] {
            try await repository.list(status: status, limit: 1000, offset: 0).jobs.reversed()
        }
        return ActiveJobs(queued: try await stored(.queued), processing: try await stored(.processing))
    }

    private var isCached: Bool { repository.activeJobsCache.lookup().jobs != nil }

    @Test func aReadIsKeptUntilTheNextWrite() async throws {
        let jobs = try await enqueue(2)
        #expect(!isCached, "a write leaves nothing cached")
        let first = try await repository.activeJobs()
        #expect(isCached)
        #expect(try await repository.activeJobs() == first)
        #expect(first.queued.map(\.id) == jobs.map(\.id))
        #expect(first.job(id: jobs[1].id)?.id == jobs[1].id)
    }

    @Test func everyKindOfWriteDropsTheCache() async throws {
        let jobs = try await enqueue(4)
        let output = JobOutput(durationSeconds: 1, frames: 25, width: 64, height: 64, fps: 25, bytes: 10, warnings: [])
        let writes: [(name: String, write: @Sendable () async throws -> Void)] = [
            ("enqueue", { _ = try await repository.enqueue(makeJob(), maxQueueSize: 20) }),
            ("claimNextJob", { _ = try await repository.claimNextJob() }),
            ("updateMessage", { _ = try await repository.updateMessage(jobs[0].id, message: "Halfway") }),
            ("complete", { _ = try await repository.complete(jobs[0].id, output: output) }),
            ("claimNextJob again", { _ = try await repository.claimNextJob() }),
            ("requeue", { _ = try await repository.requeue(jobs[1].id, message: "back", countsAsAttempt: false) }),
            ("claimNextJob once more", { _ = try await repository.claimNextJob() }),
            ("fail", { _ = try await repository.fail(jobs[1].id, failure: JobFailure(code: "x", message: "y")) }),
            ("cancel", { _ = try await repository.cancel(jobs[2].id) }),
            ("transition", { _ = try await repository.transition(jobs[3].id, to: .processing) }),
            ("recoverInterruptedJobs", { _ = try await repository.recoverInterruptedJobs(maxAttempts: 3) }),
            ("markExpired", { try await repository.markExpired(jobs[0].id) }),
        ]
        for (name, write) in writes {
            // Given a cached snapshot
            _ = try await repository.activeJobs()
            #expect(isCached, "\(name)")
            // When the write happens, then the cache is dropped and the next read shows the write
            try await write()
            #expect(!isCached, "\(name) must drop the cache")
            #expect(try await repository.activeJobs() == (try await storedActiveJobs()), "\(name)")
        }
    }

    @Test func aWriteDuringAReadIsNotHiddenByTheCache() async throws {
        // Given one queued job
        let before = try await enqueue(1)
        // When a job is added after the read but before its result would be cached
        let late = makeJob()
        let seen = try await repository.activeJobs(beforeStoring: {
            _ = try await repository.enqueue(late, maxQueueSize: 20)
        })
        // Then that read's (older) snapshot is returned but not kept; the next read sees the new job
        #expect(seen.queued.map(\.id) == before.map(\.id))
        #expect(!isCached)
        #expect(try await repository.activeJobs().queued.map(\.id) == before.map(\.id) + [late.id])
    }

    @Test func aStoreFromBeforeAnInvalidationIsRefused() {
        let cache = ActiveJobsCache()
        let (_, version) = cache.lookup()
        cache.invalidate()
        cache.store(.empty, readAt: version)
        #expect(cache.lookup().jobs == nil)
        cache.store(.empty, readAt: cache.lookup().version)
        #expect(cache.lookup().jobs == .empty)
    }

    @Test func concurrentReadsAndWritesEndWithTheStoredState() async throws {
        // Given readers racing writers
        let jobs = try await enqueue(10)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for job in jobs.prefix(5) { _ = try await repository.cancel(job.id) }
                for _ in 0..<3 { _ = try await repository.claimNextJob() }
            }
            for _ in 0..<4 {
                group.addTask { for _ in 0..<50 { _ = try await repository.activeJobs() } }
            }
            try await group.waitForAll()
        }
        // Then, once all is quiet, the cache agrees with the database
        #expect(try await repository.activeJobs() == (try await storedActiveJobs()))
        #expect(try await repository.activeJobs().queued.count == 2)
    }

    // MARK: - Status objects

    private func makeReporter(_ repository: any JobRepository) -> (StatusReporter, ThroughputEstimator) {
        let estimator = ThroughputEstimator(prior: 3)
        let reporter = StatusReporter(
            repository: repository, liveProgress: LiveProgressStore(), estimator: estimator,
            maxQueueSize: 20, capacity: { 1 })
        return (reporter, estimator)
    }

    @Test(arguments: RepositoryKind.allCases)
    func statusOfActiveJobsHasPositionsAndEstimates(_ kind: RepositoryKind) async throws {
        // Given one running job and two queued behind it
        let repository = try kind.make()
        let (reporter, estimator) = makeReporter(repository)
        let jobs = try await TestSupport.enqueue(3, into: repository, audioSeconds: 4)
        _ = try await repository.claimNextJob()
        let perJob = estimator.expectedSeconds(forAudio: 4)
        // Then the running one has no place and its whole estimate left; the queued ones wait for all ahead
        let running = try #require(try await reporter.status(ofJobWithID: jobs[0].id))
        #expect(running.status == .processing)
        #expect(running.positionInQueue == nil)
        #expect(running.estimatedSeconds == (perJob * 10).rounded() / 10)
        let last = try #require(try await reporter.status(ofJobWithID: jobs[2].id))
        #expect(last.positionInQueue == 2)
        #expect(last.estimatedSeconds == (3 * perJob * 10).rounded() / 10)
        // When the job ahead is cancelled, then the place moves up at once
        _ = try await repository.cancel(jobs[1].id)
        let moved = try #require(try await reporter.status(ofJobWithID: jobs[2].id))
        #expect(moved.positionInQueue == 1)
        #expect(moved.estimatedSeconds == (2 * perJob * 10).rounded() / 10)
        #expect(moved == (try await reporter.status(of: try #require(try await repository.job(id: jobs[2].id)))))
    }

    @Test(arguments: RepositoryKind.allCases)
    func statusOfFinishedAndUnknownJobs(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        let (reporter, _) = makeReporter(repository)
        let job = try await TestSupport.enqueue(1, into: repository)[0]
        _ = try await repository.cancel(job.id)
        let cancelled = try #require(try await reporter.status(ofJobWithID: job.id))
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.positionInQueue == nil)
        #expect(cancelled.estimatedSeconds == nil)
        #expect(cancelled.error == JobFailure.cancelled())
        #expect(try await reporter.status(ofJobWithID: "no-such-job") == nil)
    }
}
