import Foundation
import Testing

@testable import JobService

/// The store's state machine and queries, run against each implementation (SQLite and the in-memory test double), so
/// the double is proven to behave as the real store does.
@Suite struct JobRepositoryTests {
    private func enqueue(_ count: Int, into repository: any JobRepository, max: Int = 20) async throws -> [Job] {
        try await TestSupport.enqueue(count, into: repository, maxQueueSize: max)
    }

    @Test(arguments: RepositoryKind.allCases)
    func jobsAreStartedInTheOrderTheyCame(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        // Given three queued jobs
        let jobs = try await enqueue(3, into: repository)
        // When claimed one by one
        let first = try await repository.claimNextJob()
        let second = try await repository.claimNextJob()
        // Then they start first-in first-out, counting attempts
        #expect(first?.id == jobs[0].id)
        #expect(second?.id == jobs[1].id)
        #expect(first?.status == .processing)
        #expect(first?.attempts == 1)
        #expect(first?.startedAt != nil)
        #expect(try await repository.activeJobs().queued.map(\.id) == [jobs[2].id])
    }

    @Test(arguments: RepositoryKind.allCases)
    func enqueueReportsThePlaceInTheQueue(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        _ = try await enqueue(2, into: repository)
        let third = try await repository.enqueue(TestSupport.makeJob(), maxQueueSize: 20)
        #expect(third.position == 3)
        #expect(try await repository.activeJobs().queued.map(\.id).firstIndex(of: third.job.id) == 2)
    }

    @Test(arguments: RepositoryKind.allCases)
    func aFullQueueRefusesNewJobs(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        // Given a queue of two that is full
        _ = try await enqueue(2, into: repository, max: 2)
        // When a third comes, then it is refused
        await #expect(throws: QueueFull.self) {
            try await repository.enqueue(TestSupport.makeJob(), maxQueueSize: 2)
        }
        // And once one started there is room again (only queued jobs count)
        _ = try await repository.claimNextJob()
        _ = try await repository.enqueue(TestSupport.makeJob(), maxQueueSize: 2)
    }

    @Test(arguments: RepositoryKind.allCases)
    func theStateMachineRefusesMovesOutOfFinishedStates(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        // Given a completed job
        let job = try await enqueue(1, into: repository)[0]
        _ = try await repository.claimNextJob()
        let output = JobOutput(durationSeconds: 1, frames: 25, width: 64, height: 64, fps: 25, bytes: 10, warnings: [])
        let completed = try await repository.complete(job.id, output: output)
        #expect(completed?.status == .completed)
        #expect(completed?.finishedAt != nil)
        // When it is cancelled, failed or re-queued, then nothing changes
        #expect(try await repository.cancel(job.id) == nil)
        #expect(try await repository.fail(job.id, failure: JobFailure(code: "x", message: "y")) == nil)
        #expect(try await repository.requeue(job.id, message: "again", countsAsAttempt: false) == nil)
        #expect(try await repository.job(id: job.id)?.status == .completed)
        #expect(try await repository.job(id: job.id)?.output == output)
    }

    @Test(arguments: RepositoryKind.allCases)
    func aQueuedJobCannotCompleteWithoutStarting(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        let job = try await enqueue(1, into: repository)[0]
        let output = JobOutput(durationSeconds: 1, frames: 25, width: 64, height: 64, fps: 25, bytes: 10, warnings: [])
        #expect(try await repository.complete(job.id, output: output) == nil)
        #expect(JobStatus.queued.canMove(to: .completed) == false)
        #expect(JobStatus.processing.canMove(to: .queued))
        #expect(JobStatus.allCases.filter(\.isTerminal) == [.completed, .failed, .cancelled])
    }

    @Test(arguments: RepositoryKind.allCases)
    func cancellingRecordsTheReason(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        let job = try await enqueue(1, into: repository)[0]
        let cancelled = try await repository.cancel(job.id)
        #expect(cancelled?.status == .cancelled)
        #expect(cancelled?.failure == JobFailure.cancelled())
        #expect(try await repository.claimNextJob() == nil)
    }

    @Test(arguments: RepositoryKind.allCases)
    func aRequeuedJobKeepsItsPlaceAtTheHead(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        // Given a running job and two queued after it
        let jobs = try await enqueue(3, into: repository)
        _ = try await repository.claimNextJob()
        // When it goes back to the queue without counting the attempt (graceful shutdown)
        let requeued = try await repository.requeue(jobs[0].id, message: "back", countsAsAttempt: false)
        // Then it is first again, with its attempt given back
        #expect(requeued?.attempts == 0)
        #expect(requeued?.startedAt == nil)
        #expect(try await repository.activeJobs().queued.map(\.id) == jobs.map(\.id))
    }

    @Test(arguments: RepositoryKind.allCases)
    func afterACrashProcessingJobsAreRequeuedOnceThenFailed(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        // Given two jobs marked processing when the server died: one started once, one started twice
        let jobs = try await enqueue(2, into: repository)
        _ = try await repository.claimNextJob()
        _ = try await repository.claimNextJob()
        _ = try await repository.requeue(jobs[1].id, message: "", countsAsAttempt: true)
        _ = try await repository.claimNextJob()
        #expect(try await repository.job(id: jobs[1].id)?.attempts == 2)
        // When the service starts again
        let recovered = try await repository.recoverInterruptedJobs(maxAttempts: 2)
        // Then the first goes back to the queue, the second fails as interrupted
        #expect(recovered.requeued.map(\.id) == [jobs[0].id])
        #expect(recovered.failed.map(\.id) == [jobs[1].id])
        #expect(try await repository.job(id: jobs[0].id)?.status == .queued)
        let failed = try await repository.job(id: jobs[1].id)
        #expect(failed?.status == .failed)
        #expect(failed?.errorCode == "interrupted")
    }

    @Test(arguments: RepositoryKind.allCases)
    func historyIsPagedNewestFirstAndFilteredByStatus(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        let jobs = try await enqueue(5, into: repository)
        _ = try await repository.cancel(jobs[1].id)
        let page = try await repository.list(status: nil, limit: 2, offset: 1)
        #expect(page.total == 5)
        #expect(page.jobs.map(\.id) == [jobs[3].id, jobs[2].id])
        let cancelled = try await repository.list(status: .cancelled, limit: 50, offset: 0)
        #expect(cancelled.total == 1)
        #expect(cancelled.jobs.first?.id == jobs[1].id)
        #expect(try await repository.countsByStatus() == [.queued: 4, .cancelled: 1])
    }

    @Test(arguments: RepositoryKind.allCases)
    func onlyJobsFinishedBeforeTheCutoffExpire(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        let jobs = try await enqueue(2, into: repository)
        let longAgo = Date(timeIntervalSinceNow: -3600)
        _ = try await repository.cancel(jobs[0].id, now: longAgo)
        _ = try await repository.cancel(jobs[1].id)
        let expiring = try await repository.jobsToExpire(finishedBefore: Date(timeIntervalSinceNow: -60))
        #expect(expiring.map(\.id) == [jobs[0].id])
        try await repository.markExpired(jobs[0].id)
        #expect(try await repository.jobsToExpire(finishedBefore: Date()).map(\.id) == [jobs[1].id])
    }

    // MARK: - The live stream

    static func segment(_ clip: Int, of job: Job, clips: Int? = 3) -> EngineSegment {
        EngineSegment(
            jobId: job.id, clip: clip, clips: clips, file: String(format: "clip-%05d.m4s", clip),
            initFile: "init.mp4", durationSeconds: 4, endSeconds: Double(clip) * 4)
    }

    @Test(arguments: RepositoryKind.allCases)
    func aRunningJobRecordsItsSegmentsInClipOrder(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        // Given a running job
        let job = try await enqueue(1, into: repository)[0]
        _ = try await repository.claimNextJob()
        // When clips 1 and 2 are recorded, and clip 2 once more
        _ = try await repository.recordSegment(job.id, Self.segment(1, of: job))
        let second = try await repository.recordSegment(job.id, Self.segment(2, of: job))
        let repeated = try await repository.recordSegment(job.id, Self.segment(2, of: job))
        // Then the stream lists both, once, and the repeat changes nothing
        #expect(repeated == nil)
        let live = try #require(try await repository.job(id: job.id)?.live)
        #expect(live == second?.live)
        #expect(live.initFile == "init.mp4" && live.clips == 3)
        #expect(live.segments.map(\.file) == ["clip-00001.m4s", "clip-00002.m4s"])
        #expect(live.segments.map(\.endSeconds) == [4, 8])
        #expect(try await repository.activeJobs().processing.first?.live == live, "the cached snapshot too")
    }

    @Test(arguments: RepositoryKind.allCases)
    func onlyARunningJobRecordsSegments(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        let jobs = try await enqueue(2, into: repository)
        // A queued job
        #expect(try await repository.recordSegment(jobs[0].id, Self.segment(1, of: jobs[0])) == nil)
        // A cancelled one (the engine may finish a clip after the cancel)
        _ = try await repository.claimNextJob()
        _ = try await repository.cancel(jobs[0].id)
        #expect(try await repository.recordSegment(jobs[0].id, Self.segment(1, of: jobs[0])) == nil)
        #expect(try await repository.job(id: jobs[0].id)?.live == nil)
        // An unknown one
        #expect(try await repository.recordSegment("nope", Self.segment(1, of: jobs[1])) == nil)
    }

    @Test(arguments: RepositoryKind.allCases)
    func aNewAttemptStartsWithoutTheLastOnesSegments(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        // Given a running job with a segment, re-queued (a retryable error)
        let job = try await enqueue(1, into: repository)[0]
        _ = try await repository.claimNextJob()
        _ = try await repository.recordSegment(job.id, Self.segment(1, of: job))
        let requeued = try await repository.requeue(job.id, message: "again", countsAsAttempt: true)
        // Then the segments are gone while it waits, and when it starts again
        #expect(requeued?.live == nil)
        let restarted = try await repository.claimNextJob()
        #expect(restarted?.id == job.id && restarted?.live == nil)
        // And after a crash (kill -9) too
        _ = try await repository.recordSegment(job.id, Self.segment(1, of: job))
        let recovered = try await repository.recoverInterruptedJobs(maxAttempts: 5)
        #expect(recovered.requeued.map(\.live) == [nil])
        #expect(try await repository.job(id: job.id)?.live == nil)
    }

    @Test(arguments: RepositoryKind.allCases)
    func anEndedJobKeepsItsSegmentsUntilRetentionExpiresIt(_ kind: RepositoryKind) async throws {
        let repository = try kind.make()
        let job = try await enqueue(1, into: repository)[0]
        _ = try await repository.claimNextJob()
        _ = try await repository.recordSegment(job.id, Self.segment(1, of: job))
        let failed = try await repository.fail(job.id, failure: JobFailure(code: "bad_audio", message: "no"))
        #expect(failed?.live?.segments.count == 1)
        try await repository.markExpired(job.id)
        #expect(try await repository.job(id: job.id)?.live == nil)
    }

    @Test func recordedSegmentsSurviveReopeningTheDatabase() async throws {
        let path = TestSupport.makeTemporaryDirectory("itk-db") + "/jobs.sqlite"
        let job = try await TestSupport.enqueue(1, into: try GRDBJobRepository.open(path: path))[0]
        do {
            let repository = try GRDBJobRepository.open(path: path)
            _ = try await repository.claimNextJob()
            _ = try await repository.recordSegment(job.id, Self.segment(1, of: job, clips: nil))
        }
        let reopened = try GRDBJobRepository.open(path: path)
        let live = try #require(try await reopened.job(id: job.id)?.live)
        #expect(live.segments.map(\.clip) == [1] && live.clips == nil)
    }
}
