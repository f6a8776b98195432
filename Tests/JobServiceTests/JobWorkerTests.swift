import Foundation
import GRDB
import HummingbirdTesting
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing

@testable import JobService

/// The worker and the engine supervisor against `Fixtures/fake_engine.py`, an engine that can crash, hang, print
/// garbage, run slowly or refuse jobs.
@Suite struct JobWorkerTests {
    /// The service under test and the job changes it announced.
    struct Harness: Sendable {
        let service: InfiniteTalkService
        let log: JobLog

        var engine: any Engine { service.engine }
        var files: JobFiles {
            JobFiles(
                uploadsDirectory: service.configuration.uploadsDirectory,
                resultsDirectory: service.configuration.resultsDirectory)
        }

        init(_ service: InfiniteTalkService) {
            self.service = service
            log = JobLog(service.queue)
        }

        /// Queues a job (the worker is woken).
        func submit(audioSeconds: Double = 1) async throws -> Job {
            try await TestSupport.enqueueJob(service.queue, files: files, audioSeconds: audioSeconds)
        }

        /// Waits until the job is in one of `statuses`; returns it as announced then.
        func waitFor(_ job: Job, _ statuses: Set<JobStatus>) async throws -> Job {
            try await log.waitFor(job.id, statuses)
        }

        /// Waits until the engine has the job (its first stage arrived), not only the store says `processing`.
        func waitUntilOnEngine(_ job: Job) async throws {
            try await log.waitFor(job.id, [.processing]) { $0.message != "Starting" }
        }
    }

    /// Runs the whole service (worker included) on the fake engine with `engineFlags` around `body`.
    /// - Parameter settings: configuration settings by flag (`["max-attempts": "3"]`).
    private func withService(
        _ engineFlags: [String], settings: [String: String] = [:],
        _ body: @escaping @Sendable (Harness) async throws -> Void
    ) async throws {
        let configuration = TestSupport.configuration(
            engine: TestSupport.fakeEngineCommand(engineFlags), settings: settings)
        try await withService(configuration, body)
    }

    private func withService(
        _ configuration: ServiceConfiguration, _ body: @escaping @Sendable (Harness) async throws -> Void
    ) async throws {
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        let harness = Harness(service)
        try await service.application.test(.router) { _ in
            try await body(harness)
        }
    }

    /// Waits until the engine's state says `condition`.
    private func waitForEngine(
        _ harness: Harness, until condition: @escaping @Sendable (EngineState) async -> Bool
    ) async throws {
        try await TestSupport.waitForEngine(harness.engine, until: condition)
    }

    // MARK: - Normal work

    @Test func aJobRunsToCompletionOnTheEngine() async throws {
        try await withService([]) { harness in
            let job = try await harness.submit()
            let done = try await harness.waitFor(job, [.completed])
            #expect(done.output?.frames == 25)
            #expect(done.output?.bytes ?? 0 > 0)
            #expect(done.message == "Video ready")
            #expect(done.attempts == 1)
            // The uploads are gone once the job's end is announced; the result stays.
            #expect(!FileManager.default.fileExists(atPath: harness.files.uploadFolder(for: job.id)))
            #expect(harness.files.resultSize(of: job.id) != nil)
        }
    }

    @Test func theEnginesLiveSegmentsAreRecordedAsTheyCome() async throws {
        try await withService(["--segments", "3", "--garbage"]) { harness in
            let job = try await harness.submit()
            // Each segment is announced once recorded, one by one, before the job completes
            let announced = try await harness.log.waitFor(job.id, [.processing]) { $0.live?.segments.count == 1 }
            #expect(announced.live?.segments.first?.file == "clip-00001.m4s")
            let done = try await harness.waitFor(job, [.completed])
            let live = try #require(done.live)
            #expect(live.initFile == "init.mp4" && live.clips == 3)
            #expect(live.segments.map(\.file) == ["clip-00001.m4s", "clip-00002.m4s", "clip-00003.m4s"])
            #expect(live.segments.map(\.endSeconds) == [4, 8, 12])
            // Written where the service said, and kept after the job ended
            let folder = harness.files.liveFolder(for: job.id)
            let names = try FileManager.default.contentsOfDirectory(atPath: folder)
            #expect(Set(names) == ["init.mp4", "clip-00001.m4s", "clip-00002.m4s", "clip-00003.m4s"])
        }
    }

    @Test func garbageOnTheEnginesStdoutIsIgnored() async throws {
        try await withService(["--garbage"]) { harness in
            let job = try await harness.submit()
            _ = try await harness.waitFor(job, [.completed])
        }
    }

    @Test func aSlowJobIsNotMistakenForAHang() async throws {
        // The job takes longer than the heartbeat timeout, but the engine keeps answering heartbeats.
        try await withService(["--job-seconds", "8"], settings: ["heartbeat-timeout": "5s"]) { harness in
            let job = try await harness.submit()
            _ = try await harness.waitFor(job, [.completed])
            #expect(await harness.engine.restartCount == 0)
        }
    }

    @Test func concurrencyFollowsTheEnginesHello() async throws {
        try await withService(["--max-jobs", "2", "--job-seconds", "2"]) { harness in
            let jobs = [try await harness.submit(), try await harness.submit(), try await harness.submit()]
            for job in jobs { _ = try await harness.waitFor(job, [.completed]) }
            #expect(await harness.service.worker.capacity() == 2)
            // The first two ran together; the third started only once one of them had finished.
            let log = harness.log
            let firstEnd = try #require(jobs.prefix(2).compactMap { log.index(of: $0.id, .completed) }.min())
            #expect(jobs.prefix(2).allSatisfy { (log.index(of: $0.id, .processing) ?? .max) < firstEnd })
            #expect(try #require(log.index(of: jobs[2].id, .processing)) > firstEnd)
        }
    }

    @Test func theConcurrencyOverrideWinsOverTheEngine() async throws {
        try await withService(["--max-jobs", "3", "--job-seconds", "1"], settings: ["max-concurrent": "1"]) {
            harness in
            let jobs = [try await harness.submit(), try await harness.submit()]
            for job in jobs { _ = try await harness.waitFor(job, [.completed]) }
            #expect(await harness.service.worker.capacity() == 1)
            // One at a time: the second started after the first had finished.
            let log = harness.log
            #expect(
                try #require(log.index(of: jobs[1].id, .processing))
                    > (try #require(log.index(of: jobs[0].id, .completed))))
        }
    }

    // MARK: - Engine failures

    @Test func anEngineCrashMidJobFailsTheJobAndTheQueueKeepsFlowing() async throws {
        let marker = TestSupport.makeTemporaryDirectory() + "/crashed"
        try await withService(["--crash-once", marker]) { harness in
            // Given two jobs, the first of which crashes the engine
            let first = try await harness.submit()
            let second = try await harness.submit()
            // Then the first fails with a clear message, the engine restarts, the second completes
            let failed = try await harness.waitFor(first, [.failed])
            #expect(failed.errorCode == "engine_crashed")
            #expect(failed.errorMessage?.contains("exited with code 3") == true)
            #expect(failed.errorMessage?.contains("boom") == true)
            _ = try await harness.waitFor(second, [.completed])
            #expect(await harness.engine.restartCount == 1)
        }
    }

    @Test func aHungEngineIsKilledAfterTheHeartbeatTimeout() async throws {
        // Time on the supervisor's clock moves only when this test moves it.
        let clock = ManualClock()
        let configuration = TestSupport.configuration(
            engine: TestSupport.fakeEngineCommand(["--hang-on-job"]),
            settings: ["heartbeat-timeout": "1s", "restart-backoff": "1s"])
        let engine = EngineSupervisor(
            configuration: configuration.engine, logger: TestSupport.quietLogger, clock: clock)
        let service = try await buildApplication(configuration, engine: engine, logger: TestSupport.quietLogger)
        let harness = Harness(service)
        try await service.application.test(.router) { _ in
            let job = try await harness.submit()
            try await harness.waitUntilOnEngine(job)
            // When more than the heartbeat timeout passes without a word from the engine
            await clock.waitForSleeper()
            clock.advance(by: .seconds(2))
            let failed = try await harness.waitFor(job, [.failed])
            #expect(failed.errorCode == "engine_timeout", "the missed heartbeats, not a crash, ended it")
            // And after the restart pause a fresh engine comes up
            try await waitForEngine(harness) { _ in await engine.restartCount >= 1 }
            await clock.waitForSleeper()
            clock.advance(by: .seconds(1))
            try await TestSupport.waitUntilReady(engine)
            #expect(await engine.restartCount == 1)
        }
    }

    @Test func engineErrorsFailTheJobWithTheirCode() async throws {
        try await withService(["--job-error", "bad_audio"]) { harness in
            let job = try await harness.submit()
            let failed = try await harness.waitFor(job, [.failed])
            #expect(failed.failure == JobFailure(code: "bad_audio", message: "fake bad_audio"))
            #expect(failed.attempts == 1)
        }
    }

    @Test func retryableErrorsAreRetriedUpToMaxAttempts() async throws {
        try await withService(["--job-error", "out_of_memory", "--retryable"], settings: ["max-attempts": "3"]) {
            harness in
            let job = try await harness.submit()
            let failed = try await harness.waitFor(job, [.failed])
            #expect(failed.errorCode == "out_of_memory")
            #expect(failed.attempts == 3)
        }
    }

    @Test func aLoadFailureKeepsJobsQueuedAndTellsWhy() async throws {
        try await withService(["--fail-load"]) { harness in
            let job = try await harness.submit()
            try await waitForEngine(harness) { state in
                if case .unavailable(let reason) = state { reason.contains("missing.safetensors") } else { false }
            }
            #expect(try await harness.service.repository.job(id: job.id)?.status == .queued)
        }
    }

    @Test func anEngineSpeakingAnotherProtocolVersionIsRefused() async throws {
        let script = TestSupport.makeTemporaryDirectory() + "/v2.sh"
        try
            #"echo '{"type":"hello","protocol_version":2,"engine":"x","engine_version":"9","capabilities":{"resolutions":["480p"],"fps":25,"max_concurrent_jobs":1,"device":"cpu","is_preview":true}}'; echo '{"type":"ready","load_seconds":0}'; sleep 30"#
            .write(toFile: script, atomically: true, encoding: .utf8)
        let configuration = TestSupport.configuration(engine: ["sh", script], settings: ["restart-backoff": "5s"])
        try await withService(configuration) { harness in
            try await waitForEngine(harness) { state in
                if case .unavailable(let reason) = state { reason.contains("protocol 2") } else { false }
            }
        }
    }

    // MARK: - Cancelling

    /// (How fast: `make bench` measures cancel-to-next-job latency; a timed assertion here would be flaky on CI.)
    @Test func cancellingARunningJobStopsItOnTheEngineAndFreesItsSlot() async throws {
        try await withService(["--job-seconds", "60"]) { harness in
            // Given a long job running in the only slot, and one waiting
            let running = try await harness.submit()
            let waiting = try await harness.submit()
            try await harness.waitUntilOnEngine(running)
            // When the running one is cancelled
            guard case .cancelled(let cancelled) = try await harness.service.queue.cancel(running.id) else {
                Issue.record("not cancelled")
                return
            }
            #expect(cancelled.status == .cancelled)
            // Then the engine stops it, long before it would have finished, and its slot runs the next job
            _ = try await harness.waitFor(waiting, [.processing])
            #expect(try await harness.service.repository.job(id: running.id)?.status == .cancelled)
            #expect(await harness.engine.restartCount == 0)
            #expect(harness.files.resultSize(of: running.id) == nil)
        }
    }

    @Test func anEngineThatIgnoresACancelIsRestarted() async throws {
        try await withService(["--job-seconds", "30", "--ignore-cancel"], settings: ["cancel-timeout": "1s"]) {
            harness in
            let job = try await harness.submit()
            try await harness.waitUntilOnEngine(job)
            _ = try await harness.service.queue.cancel(job.id)
            try await waitForEngine(harness) { _ in await harness.engine.restartCount >= 1 }
            #expect(try await harness.service.repository.job(id: job.id)?.status == .cancelled)
        }
    }

    @Test func cancellingAQueuedJobRemovesItFromTheQueue() async throws {
        try await withService(["--never-ready"]) { harness in
            let job = try await harness.submit()
            guard case .cancelled = try await harness.service.queue.cancel(job.id) else {
                Issue.record("not cancelled")
                return
            }
            #expect(try await harness.service.repository.activeJobs().queued.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: harness.files.uploadFolder(for: job.id)))
            guard case .alreadyFinished = try await harness.service.queue.cancel(job.id) else {
                Issue.record("a second cancel should find it finished")
                return
            }
        }
    }

    /// The race a probe hit 2 times in ~1,555: a client cancels a queued job just as the worker claims it. The claim
    /// lands first; the runner sees the cancel and lets the job go while the cancel's write has not landed yet, so it
    /// finds the job still running. The job's uploads must go all the same.
    @Test func aCancelRacingTheStartOfItsJobStillRemovesItsUploads() async throws {
        let repository = HeldJobRepository()
        let configuration = TestSupport.configuration(engine: [], settings: ["max-concurrent": "1"])
        let service = try await buildApplication(
            configuration, repository: repository,
            engine: SilentEngine(hello: TestSupport.fakeEngineHello, ready: true),
            clock: ManualClock(), logger: TestSupport.quietLogger)
        let harness = Harness(service)
        try await service.application.test(.router) { _ in
            try await TestSupport.withTimeout {
                // Given the worker about to claim (held there), and a queued job with uploads
                await repository.claims.waitForArrivals(1)
                let job = try await harness.submit()
                #expect(FileManager.default.fileExists(atPath: harness.files.uploadFolder(for: job.id)))
                // When a client cancels it, its write held back,
                let cancel = Task { try await service.queue.cancel(job.id) }
                await repository.cancels.waitForArrivals(1)
                // while the worker claims the job, sees the cancel and lets it go (its next claim: the slot is free)
                repository.claims.open()
                await repository.claims.waitForArrivals(2)
                repository.cancels.open()
                // Then the cancel succeeds and the job's uploads are gone
                guard case .cancelled(let cancelled) = try await cancel.value else {
                    Issue.record("not cancelled")
                    return
                }
                #expect(cancelled.startedAt != nil, "the claim landed first")
                #expect(!FileManager.default.fileExists(atPath: harness.files.uploadFolder(for: job.id)))
            }
        }
    }

    // MARK: - A full disk

    @Test func aJobWhoseEndCannotBeWrittenFailsWithDiskFullOnceAWriteLands() async throws {
        // Given a disk so full that the next three state writes fail (SQLite: "database or disk is full")
        let repository = FullDiskRepository(failingWrites: 3)
        let clock = ManualClock()
        let configuration = TestSupport.configuration(engine: TestSupport.fakeEngineCommand())
        let service = try await buildApplication(
            configuration, repository: repository, clock: clock, logger: TestSupport.quietLogger)
        let harness = Harness(service)
        try await service.application.test(.router) { _ in
            let job = try await harness.submit()
            // When the engine finishes it, the worker cannot record that, and tries again after 2, 4 and 8 s of its
            // clock (it owns these waits: the engine and the tick of the dispatch loop sleep for other durations)
            for seconds in [2, 4, 8] {
                try await TestSupport.withTimeout { await clock.waitForSleeper(lasting: .seconds(seconds)) }
                clock.advance(by: .seconds(seconds))
            }
            // Then the fourth write lands: the job failed with disk_full, not stuck in processing
            let failed = try await harness.waitFor(job, [.failed])
            #expect(failed.failure == .diskFull)
            #expect(repository.writesStillFailing == 0)
            #expect(try await service.repository.job(id: job.id)?.status == .failed)
            let metrics = try await service.queue.renderMetrics()
            #expect(metrics.contains("infinitetalk_jobs_processing 0"), "nothing counts it as running")
            // Its files are gone: the uploads, and the result that could not be recorded
            #expect(!FileManager.default.fileExists(atPath: harness.files.uploadFolder(for: job.id)))
            #expect(harness.files.resultSize(of: job.id) == nil)
            // And the worker goes on: the next job completes
            let next = try await harness.submit()
            _ = try await harness.waitFor(next, [.completed])
        }
    }

    // MARK: - Shutdown

    /// Starts the worker on `engineFlags` (its grace period timed by `clock`), submits a job, triggers a graceful
    /// shutdown once it runs, calls `whileDraining`, and waits for the worker to stop. Returns the job as stored
    /// afterwards.
    private func jobAfterGracefulShutdown(
        engineFlags: [String], clock: ManualClock,
        whileDraining: @escaping @Sendable (InfiniteTalkService) async -> Void = { _ in }
    ) async throws -> Job? {
        let configuration = TestSupport.configuration(
            engine: TestSupport.fakeEngineCommand(engineFlags), settings: ["shutdown-grace": "30s"])
        let service = try await buildApplication(configuration, clock: clock, logger: TestSupport.quietLogger)
        let harness = Harness(service)
        let job = try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.worker.run() }
                let job = try await harness.submit()
                _ = try await harness.waitFor(job, [.processing])
                trigger.triggerGracefulShutdown()
                await whileDraining(service)
                try await group.waitForAll()
                return job
            }
        }
        return try await service.repository.job(id: job.id)
    }

    @Test func gracefulShutdownLetsARunningJobFinish() async throws {
        // The grace period never ends: the clock does not move.
        let finished = try await jobAfterGracefulShutdown(engineFlags: ["--job-seconds", "1"], clock: ManualClock())
        #expect(finished?.status == .completed, "\(finished?.message ?? "")")
    }

    @Test func gracefulShutdownRequeuesWhatDoesNotFinishInTime() async throws {
        let clock = ManualClock()
        let requeued = try await jobAfterGracefulShutdown(engineFlags: ["--job-seconds", "600"], clock: clock) {
            service in
            #expect(service.queue.isDraining)
            // The grace period passes while the job still runs
            await clock.waitForSleeper(lasting: .seconds(30))
            clock.advance(by: .seconds(30))
        }
        #expect(requeued?.status == .queued)
        #expect(requeued?.attempts == 0, "a shutdown does not count as an attempt")
    }

    /// The pitfall the worker avoids: GRDB refuses to write inside a cancelled task.
    @Test func grdbRefusesWritesInACancelledTask() async throws {
        let database = try DatabaseQueue()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await database.write { _ in 1 }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test func theEndOfAJobIsRecordedEvenWhenTheWorkerIsCancelled() async throws {
        // Given a worker running a long job, on SQLite
        let configuration = TestSupport.configuration(engine: TestSupport.fakeEngineCommand(["--job-seconds", "600"]))
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        let harness = Harness(service)
        let workerTask = Task { try await service.worker.run() }
        let job = try await harness.submit()
        _ = try await harness.waitFor(job, [.processing])
        // When the worker task is cancelled outright (no graceful shutdown)
        workerTask.cancel()
        _ = try? await workerTask.value
        // Then the job's new state was still written: back in the queue, not stuck in `processing`
        let after = try await service.repository.job(id: job.id)
        #expect(after?.status == .queued)
    }
}
