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
    /// Runs the whole service (worker included) around `body`.
    private func withService(
        _ engineFlags: [String], _ adjust: (inout ServiceConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (InfiniteTalkService) async throws -> Void
    ) async throws {
        let configuration = TestSupport.configuration(engine: TestSupport.fakeEngineCommand(engineFlags), adjust)
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        try await service.application.test(.router) { _ in
            try await body(service)
        }
    }

    private func files(_ service: InfiniteTalkService) -> JobFiles {
        JobFiles(
            uploadsDirectory: service.configuration.uploadsDirectory,
            resultsDirectory: service.configuration.resultsDirectory)
    }

    private func submit(_ service: InfiniteTalkService, audioSeconds: Double = 1) async throws -> Job {
        let job = try await TestSupport.enqueueJob(
            service.repository, files: files(service), audioSeconds: audioSeconds)
        service.worker.wakeUp.signal()
        return job
    }

    private func waitFor(
        _ service: InfiniteTalkService, _ job: Job, _ statuses: Set<JobStatus>,
        timeout: Duration = .seconds(45)
    ) async throws -> Job {
        let found = try await TestSupport.waitForJob(
            job.id, in: service.repository, statuses: statuses, timeout: timeout)
        let current = try #require(found)
        #expect(statuses.contains(current.status), "job is \(current.status) (\(current.message))")
        return current
    }

    /// Waits until the engine has the job (not only the database says `processing`).
    private func engineRuns(_ job: Job, _ service: InfiniteTalkService) async throws -> Bool {
        let supervisor = service.supervisor
        let id = job.id
        return try await TestSupport.waitUntil { await supervisor.isRunning(jobID: id) }
    }

    // MARK: - Normal work

    @Test func aJobRunsToCompletionOnTheEngine() async throws {
        try await withService([]) { service in
            let job = try await submit(service)
            let done = try await waitFor(service, job, [.completed])
            #expect(done.output?.frames == 25)
            #expect(done.output?.bytes ?? 0 > 0)
            #expect(done.message == "Video ready")
            #expect(done.attempts == 1)
            // The uploads are gone once the job is over; the result stays.
            #expect(
                try await TestSupport.waitUntil(timeout: .seconds(10)) {
                    !FileManager.default.fileExists(atPath: files(service).uploadFolder(for: job.id))
                })
            #expect(files(service).resultSize(of: job.id) != nil)
        }
    }

    @Test func garbageOnTheEnginesStdoutIsIgnored() async throws {
        try await withService(["--garbage"]) { service in
            let job = try await submit(service)
            _ = try await waitFor(service, job, [.completed])
        }
    }

    @Test func aSlowJobIsNotMistakenForAHang() async throws {
        // The job takes longer than the heartbeat timeout, but the engine keeps answering heartbeats.
        try await withService(["--job-seconds", "8"], { $0.engine.heartbeatTimeout = .seconds(5) }) { service in
            let job = try await submit(service)
            _ = try await waitFor(service, job, [.completed], timeout: .seconds(60))
            #expect(await service.supervisor.restartCount == 0)
        }
    }

    @Test func concurrencyFollowsTheEnginesHello() async throws {
        try await withService(["--max-jobs", "2", "--job-seconds", "2"]) { service in
            let jobs = [try await submit(service), try await submit(service), try await submit(service)]
            let twoRunning = try await TestSupport.waitUntil {
                try await service.repository.processingJobs().count == 2
            }
            #expect(twoRunning)
            #expect(await service.worker.capacity() == 2)
            #expect(try await service.repository.queuedJobs().map(\.id) == [jobs[2].id])
            for job in jobs { _ = try await waitFor(service, job, [.completed]) }
        }
    }

    @Test func theConcurrencyOverrideWinsOverTheEngine() async throws {
        try await withService(["--max-jobs", "3", "--job-seconds", "1"], { $0.maxConcurrentJobs = 1 }) { service in
            let jobs = [try await submit(service), try await submit(service)]
            _ = try await waitFor(service, jobs[0], [.processing])
            #expect(try await service.repository.processingJobs().count == 1)
            #expect(await service.worker.capacity() == 1)
            for job in jobs { _ = try await waitFor(service, job, [.completed]) }
        }
    }

    // MARK: - Engine failures

    @Test func anEngineCrashMidJobFailsTheJobAndTheQueueKeepsFlowing() async throws {
        let marker = TestSupport.makeTemporaryDirectory() + "/crashed"
        try await withService(["--crash-once", marker]) { service in
            // Given two jobs, the first of which crashes the engine
            let first = try await submit(service)
            let second = try await submit(service)
            // Then the first fails with a clear message, the engine restarts, the second completes
            let failed = try await waitFor(service, first, [.failed])
            #expect(failed.errorCode == "engine_crashed")
            #expect(failed.errorMessage?.contains("exited with code 3") == true)
            #expect(failed.errorMessage?.contains("boom") == true)
            _ = try await waitFor(service, second, [.completed])
            #expect(await service.supervisor.restartCount == 1)
        }
    }

    @Test func aHungEngineIsKilledAfterTheHeartbeatTimeout() async throws {
        try await withService(["--hang-on-job"], { $0.engine.heartbeatTimeout = .seconds(1) }) { service in
            let job = try await submit(service)
            _ = try await waitFor(service, job, [.processing])
            let failed = try await waitFor(service, job, [.failed])
            #expect(failed.errorCode == "engine_timeout", "the missed heartbeats, not a crash, ended it")
            // And a fresh engine comes up
            #expect(try await TestSupport.waitUntil { await service.supervisor.state.hello != nil })
            #expect(await service.supervisor.restartCount >= 1)
        }
    }

    @Test func engineErrorsFailTheJobWithTheirCode() async throws {
        try await withService(["--job-error", "bad_audio"]) { service in
            let job = try await submit(service)
            let failed = try await waitFor(service, job, [.failed])
            #expect(failed.failure == JobFailure(code: "bad_audio", message: "fake bad_audio"))
            #expect(failed.attempts == 1)
        }
    }

    @Test func retryableErrorsAreRetriedUpToMaxAttempts() async throws {
        try await withService(["--job-error", "out_of_memory", "--retryable"], { $0.maxAttempts = 3 }) { service in
            let job = try await submit(service)
            let failed = try await waitFor(service, job, [.failed])
            #expect(failed.errorCode == "out_of_memory")
            #expect(failed.attempts == 3)
        }
    }

    @Test func aLoadFailureKeepsJobsQueuedAndTellsWhy() async throws {
        try await withService(["--fail-load"]) { service in
            let job = try await submit(service)
            let unavailable = try await TestSupport.waitUntil {
                if case .unavailable(let reason) = await service.supervisor.state {
                    return reason.contains("missing.safetensors")
                }
                return false
            }
            #expect(unavailable)
            #expect(try await service.repository.job(id: job.id)?.status == .queued)
        }
    }

    @Test func anEngineSpeakingAnotherProtocolVersionIsRefused() async throws {
        let script = TestSupport.makeTemporaryDirectory() + "/v2.sh"
        try
            #"echo '{"type":"hello","protocol_version":2,"engine":"x","engine_version":"9","capabilities":{"resolutions":["480p"],"fps":25,"max_concurrent_jobs":1,"device":"cpu","is_preview":true}}'; echo '{"type":"ready","load_seconds":0}'; sleep 30"#
            .write(toFile: script, atomically: true, encoding: .utf8)
        var configuration = TestSupport.configuration(engine: ["sh", script])
        configuration.engine.restartBackoff = .seconds(5)
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        try await service.application.test(.router) { _ in
            let refused = try await TestSupport.waitUntil {
                if case .unavailable(let reason) = await service.supervisor.state {
                    return reason.contains("protocol 2")
                }
                return false
            }
            #expect(refused)
        }
    }

    // MARK: - Cancelling

    /// (How fast: `make bench` measures cancel-to-next-job latency; a timed assertion here would be flaky on CI.)
    @Test func cancellingARunningJobStopsItOnTheEngineAndFreesItsSlot() async throws {
        try await withService(["--job-seconds", "60"]) { service in
            // Given a long job running in the only slot, and one waiting
            let running = try await submit(service)
            let waiting = try await submit(service)
            let onEngine = try await engineRuns(running, service)
            #expect(onEngine)
            // When the running one is cancelled
            guard case .cancelled(let cancelled) = try await service.worker.cancel(running.id) else {
                Issue.record("not cancelled")
                return
            }
            #expect(cancelled.status == .cancelled)
            // Then the engine stops it, long before it would have finished, and its slot runs the next job
            _ = try await waitFor(service, waiting, [.processing], timeout: .seconds(20))
            #expect(try await service.repository.job(id: running.id)?.status == .cancelled)
            #expect(await service.supervisor.restartCount == 0)
            #expect(files(service).resultSize(of: running.id) == nil)
        }
    }

    @Test func anEngineThatIgnoresACancelIsRestarted() async throws {
        try await withService(["--job-seconds", "30", "--ignore-cancel"], { $0.engine.cancelTimeout = .seconds(1) }) {
            service in
            let job = try await submit(service)
            let onEngine = try await engineRuns(job, service)
            #expect(onEngine)
            _ = try await service.worker.cancel(job.id)
            let restarted = try await TestSupport.waitUntil(timeout: .seconds(15)) {
                await service.supervisor.restartCount >= 1
            }
            #expect(restarted)
            #expect(try await service.repository.job(id: job.id)?.status == .cancelled)
        }
    }

    @Test func cancellingAQueuedJobRemovesItFromTheQueue() async throws {
        try await withService(["--never-ready"]) { service in
            let job = try await submit(service)
            guard case .cancelled = try await service.worker.cancel(job.id) else {
                Issue.record("not cancelled")
                return
            }
            #expect(try await service.repository.queuedJobs().isEmpty)
            #expect(
                try await TestSupport.waitUntil(timeout: .seconds(10)) {
                    !FileManager.default.fileExists(atPath: files(service).uploadFolder(for: job.id))
                })
            guard case .alreadyFinished = try await service.worker.cancel(job.id) else {
                Issue.record("a second cancel should find it finished")
                return
            }
        }
    }

    // MARK: - Shutdown

    /// Starts the worker on `engineFlags`, submits a job, triggers a graceful shutdown once it runs, and waits for
    /// the worker to stop. Returns the job as stored afterwards.
    private func jobAfterGracefulShutdown(
        engineFlags: [String], gracePeriod: Duration,
        whileDraining: @escaping @Sendable (InfiniteTalkService) -> Void = { _ in }
    ) async throws -> Job? {
        var configuration = TestSupport.configuration(engine: TestSupport.fakeEngineCommand(engineFlags))
        configuration.shutdownGracePeriod = gracePeriod
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        let job = try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.worker.run() }
                let job = try await submit(service)
                _ = try await waitFor(service, job, [.processing])
                trigger.triggerGracefulShutdown()
                whileDraining(service)
                try await group.waitForAll()
                return job
            }
        }
        return try await service.repository.job(id: job.id)
    }

    @Test func gracefulShutdownLetsARunningJobFinish() async throws {
        let finished = try await jobAfterGracefulShutdown(
            engineFlags: ["--job-seconds", "1"], gracePeriod: .seconds(30))
        #expect(finished?.status == .completed, "\(finished?.message ?? "")")
    }

    @Test func gracefulShutdownRequeuesWhatDoesNotFinishInTime() async throws {
        let requeued = try await jobAfterGracefulShutdown(
            engineFlags: ["--job-seconds", "30"],
            gracePeriod: .milliseconds(300)
        ) { service in
            #expect(service.worker.shutdownState.isDraining)
        }
        #expect(requeued?.status == .queued)
        #expect(requeued?.attempts == 0, "a shutdown does not count as an attempt")
    }

    /// The pitfall the worker avoids: GRDB refuses to write inside a cancelled task.
    @Test func grdbRefusesWritesInACancelledTask() async throws {
        let database = try AppDatabase.inMemory()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await database.writer.write { _ in 1 }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test func theEndOfAJobIsRecordedEvenWhenTheWorkerIsCancelled() async throws {
        // Given a worker running a long job
        let configuration = TestSupport.configuration(engine: TestSupport.fakeEngineCommand(["--job-seconds", "30"]))
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        let workerTask = Task { try await service.worker.run() }
        let job = try await submit(service)
        _ = try await waitFor(service, job, [.processing])
        // When the worker task is cancelled outright (no graceful shutdown)
        workerTask.cancel()
        _ = try? await workerTask.value
        // Then the job's new state was still written: back in the queue, not stuck in `processing`
        let after = try await service.repository.job(id: job.id)
        #expect(after?.status == .queued)
    }
}
