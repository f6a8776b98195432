import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs queued jobs on the engine, as many at once as there are slots, in queue order.
///
/// The worker is a `Service`: `run()` keeps the engine alive, claims jobs while the engine is ready and a slot is
/// free, and records every job's end. It is woken (`wakeUp()`) when something it waits for may have changed: a job
/// was added, a slot freed, the engine's state changed; and every second, in case a signal was missed. On graceful
/// shutdown it stops claiming, lets running jobs finish within the grace period, re-queues the rest, and stops the
/// engine.
public actor JobWorker: Service {
    /// How the worker runs jobs.
    struct Settings: Sendable {
        var maxAttempts: Int
        var gracePeriod: Duration
    }

    let repository: any JobRepository
    let engine: any Engine
    let files: JobFiles
    let liveProgress: LiveProgressStore
    let notifier: JobNotifier
    let estimator: ThroughputEstimator
    let metrics: ServiceMetrics
    let logger: Logger
    let settings: Settings
    let clock: any ServiceClock
    /// Jobs run at once: the configured override, else what the engine said it can do.
    let slots: @Sendable () async -> Int

    /// Whether the service is draining (SIGTERM received): new jobs are refused with 503 `shutting_down`.
    private nonisolated let draining = Mutex(false)
    /// Wake-ups coalesce: many before one wait count once.
    private nonisolated let wakeUps = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    private var running: Set<String> = []
    private var cancelRequested: Set<String> = []
    private var isDrained = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    /// Drain waits here until no job runs (or the grace period ended).
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    init(
        repository: any JobRepository, engine: any Engine, files: JobFiles, liveProgress: LiveProgressStore,
        notifier: JobNotifier, estimator: ThroughputEstimator, metrics: ServiceMetrics, logger: Logger,
        settings: Settings, clock: any ServiceClock, slots: @escaping @Sendable () async -> Int
    ) {
        self.repository = repository
        self.engine = engine
        self.files = files
        self.liveProgress = liveProgress
        self.notifier = notifier
        self.estimator = estimator
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
        self.clock = clock
        self.slots = slots
    }

    /// Jobs run at once: the configured override, else what the engine said it can do.
    public func capacity() async -> Int {
        await slots()
    }

    /// How many jobs run now.
    public var runningCount: Int { running.count }

    /// Whether new jobs are refused because the service is stopping.
    public nonisolated var isDraining: Bool { draining.withLock { $0 } }

    /// Asks the dispatch loop to look for work.
    public nonisolated func wakeUp() { wakeUps.continuation.yield() }

    /// Stops taking jobs (new ones are refused from now on).
    nonisolated func beginDraining() {
        draining.withLock { $0 = true }
        wakeUp()
    }

    // MARK: - Service

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.engine.run() }
                group.addTask { await self.followEngine() }
                let ticks = Task { await self.tickWhileServing() }
                for await _ in wakeUps.stream {
                    if isDraining { break }
                    await startJobs(in: &group)
                }
                ticks.cancel()
                await drainRunningJobs()
                await engine.stop()
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            self.beginDraining()
        }
        markDrained()
        // Returning early would make the service group cancel its other services; wait for the shutdown.
        try? await gracefulShutdown()
    }

    /// Stops taking jobs and waits until the running ones finished (or were re-queued) and the engine stopped.
    /// Used by the server before it stops listening, so clients get 503 `shutting_down` meanwhile.
    public func drain() async {
        beginDraining()
        guard !isDrained else { return }
        await withCheckedContinuation { drainWaiters.append($0) }
    }

    private func markDrained() {
        isDrained = true
        for waiter in drainWaiters { waiter.resume() }
        drainWaiters.removeAll()
    }

    /// Wakes the dispatch loop on every engine state change (ready: jobs can start), and counts restarts.
    private nonisolated func followEngine() async {
        for await state in await engine.states() {
            if case .unavailable = state { metrics.engineRestarts.increment() }
            wakeUp()
        }
    }

    /// Wakes the dispatch loop every second, in case a signal was missed.
    private nonisolated func tickWhileServing() async {
        while !isDraining, !Task.isCancelled {
            try? await clock.sleep(for: .seconds(1))
            wakeUp()
        }
    }

    // MARK: - Dispatch

    private func startJobs(in group: inout TaskGroup<Void>) async {
        guard case .ready = await engine.state else { return }
        let slots = await capacity()
        while running.count < slots, !isDraining {
            let job: Job
            do {
                guard let next = try await repository.claimNextJob() else { return }
                job = next
            } catch {
                logger.error("could not claim a job: \(error)")
                return
            }
            running.insert(job.id)
            metrics.countJob(.processing)
            logger.info("starting job \(job.id) (attempt \(job.attempts))")
            await notifier.statusChanged(job)
            group.addTask { await self.process(job) }
        }
    }

    /// What ended a job's run on the engine.
    enum Outcome {
        case done(EngineDone)
        case failed(EngineError)
        case lost(JobFailure)
        /// The engine was not ready; the job never started.
        case notSent
        /// The client cancelled before the job reached the engine.
        case cancelledBeforeStart
    }

    private func process(_ job: Job) async {
        let outcome = await runOnEngine(job)
        // Cancelled means the service is being stopped hard: the job is not at fault, it goes back to the queue.
        let interrupted = Task.isCancelled || isDraining
        // Record the end outside this task: if it was cancelled, GRDB would refuse the write.
        await Task { await self.finish(job, outcome, interrupted: interrupted) }.value
        running.remove(job.id)
        cancelRequested.remove(job.id)
        // A cancel whose write landed while `finish` ran saw the job still running and left its files to us.
        try? await Task { try await self.removeFilesIfEnded(job.id) }.value
        if running.isEmpty { resumeIdleWaiters() }
        wakeUp()
    }

    private func runOnEngine(_ job: Job) async -> Outcome {
        if cancelRequested.contains(job.id) { return .cancelledBeforeStart }
        let request = EngineJobRequest(
            jobID: job.id, imagePath: job.imagePath, audioPath: job.audioPath,
            audio2Path: job.audio2Path, outputPath: job.resultPath, segmentsDirectory: prepareLiveFolder(for: job),
            parameters: job.parameters)
        guard let events = await engine.submit(request) else { return .notSent }
        if cancelRequested.contains(job.id) { await engine.cancel(jobID: job.id) }
        var outcome = Outcome.lost(JobFailure(code: "internal", message: "The engine ended the job without a result"))
        for await event in events {
            switch event {
            case .stage(let stage):
                let progress = liveProgress.record(stage)
                notifier.progressed(job, progress: progress, message: stage.message, force: true)
                if let updated = try? await repository.updateMessage(job.id, message: stage.message) {
                    await notifier.statusChanged(updated, queueChanged: false)
                }
            case .progress(let report):
                let progress = liveProgress.record(report)
                // A clip's last step always goes out, so clients see each clip (and the job) reach its end.
                let clipEnded = report.step != nil && report.step == report.steps
                notifier.progressed(
                    job, progress: progress, message: progress.summary, force: clipEnded)
            case .segment(let segment):
                await recordSegment(segment, of: job)
            case .done(let done): outcome = .done(done)
            case .failed(let error): outcome = .failed(error)
            case .lost(let failure): outcome = .lost(failure)
            }
        }
        return outcome
    }

    // MARK: - The live stream

    /// Empties the job's live folder for this attempt (the engine writes the segments there).
    /// - Returns: its absolute path, or `nil` (no live stream this time) when it cannot be made.
    private func prepareLiveFolder(for job: Job) -> String? {
        do {
            let folder = try files.prepareLiveFolder(for: job.id)
            return URL(fileURLWithPath: folder).standardizedFileURL.path
        } catch {
            logger.warning("job \(job.id): no live stream, its folder could not be made: \(error)")
            return nil
        }
    }

    /// Records a finished clip's segment, then announces it (`status_update`, `clip_ready`): a client told about a
    /// segment can always fetch it. A name the protocol does not allow, or a file that is not there, is ignored.
    private func recordSegment(_ segment: EngineSegment, of job: Job) async {
        guard segment.hasProtocolNames,
            [segment.initFile, segment.file].allSatisfy({
                files.fileSize(at: files.livePath(for: job.id, file: $0)) != nil
            })
        else {
            logger.warning("job \(job.id): ignoring segment \(segment.file) (not a protocol name, or not written)")
            return
        }
        do {
            // `nil`: the job ended meanwhile (cancelled), or the clip was already recorded.
            guard let updated = try await repository.recordSegment(job.id, segment), let live = updated.live else {
                return
            }
            await notifier.statusChanged(updated, queueChanged: false)
            notifier.clipReady(job, live: live)
        } catch {
            logger.error("job \(job.id): could not record segment \(segment.file): \(error)")
        }
    }

    // MARK: - Recording the end

    /// The first wait before writing a job's end again after the store refused it; it doubles up to
    /// `longestWriteRetry`.
    static let firstWriteRetry = Duration.seconds(2)
    static let longestWriteRetry = Duration.seconds(60)

    /// Records the end of a job. A write the store refuses is tried again on the clock until it lands, so a job never
    /// stays `processing`; when the disk is full the job then fails with `disk_full` (its result, if any, is
    /// deleted: the space is needed). While the service stops it gives up: the next start's recovery settles the job.
    /// - Parameter interrupted: the service is stopping; a job the engine lost or cancelled goes back to the queue.
    private func finish(_ job: Job, _ outcome: Outcome, interrupted: Bool) async {
        defer {
            liveProgress.remove(job.id)
            notifier.broadcaster.forget(job.id)
        }
        var outcome = outcome
        var delay = Self.firstWriteRetry
        while true {
            do {
                try await record(job, outcome, interrupted: interrupted)
                return
            } catch {
                if isDiskFull(error) { outcome = .lost(.diskFull) }
                guard !isDraining else {
                    logger.error("could not record the end of job \(job.id): \(error); the next start settles it")
                    return
                }
                logger.error("could not record the end of job \(job.id): \(error); trying again in \(delay)")
                try? await clock.sleep(for: delay)
                delay = min(delay * 2, Self.longestWriteRetry)
            }
        }
    }

    private func record(_ job: Job, _ outcome: Outcome, interrupted: Bool) async throws {
        let updated: Job?
        switch outcome {
        case .done(let done):
            updated = try await complete(job, done)
        case .failed(let error) where error.code == "cancelled":
            // Cancelled by the client (already recorded), or by the engine shutting down.
            updated = try await requeueOrFail(
                job, JobFailure(code: "cancelled", message: error.message),
                retry: interrupted, countsAsAttempt: false)
        case .failed(let error):
            let retry = (error.retryable ?? false) && job.attempts < settings.maxAttempts
            updated = try await requeueOrFail(
                job, JobFailure(code: error.code, message: error.message),
                retry: retry, countsAsAttempt: true)
        case .lost(let failure):
            updated = try await requeueOrFail(job, failure, retry: interrupted, countsAsAttempt: false)
        case .notSent:
            updated = try await repository.requeue(
                job.id, message: "Waiting for the engine", countsAsAttempt: false)
        case .cancelledBeforeStart:
            updated = nil
        }
        try await removeFilesIfEnded(job.id)
        // `nil`: nothing changed (e.g. the client cancelled first, and that was announced then).
        if let updated {
            logger.info("job \(job.id): \(updated.status.rawValue) (\(updated.message))")
            await notifier.statusChanged(updated)
        }
    }

    /// Deletes the uploads of a job that has ended, and its result unless it completed.
    private func removeFilesIfEnded(_ id: String) async throws {
        guard let current = try await repository.job(id: id), current.status.isTerminal else { return }
        files.removeUploads(of: id)
        if current.status != .completed { files.removeResult(of: id) }
    }

    private func complete(_ job: Job, _ done: EngineDone) async throws -> Job? {
        guard let bytes = files.resultSize(of: job.id), bytes > 0 else {
            return try await fail(
                job,
                JobFailure(
                    code: "internal",
                    message: "The engine reported success but wrote no video"))
        }
        let output = JobOutput(
            durationSeconds: done.durationSeconds, frames: done.frames, width: done.width,
            height: done.height, fps: done.fps, bytes: bytes, warnings: done.warnings ?? [])
        guard let completed = try await repository.complete(job.id, output: output) else {
            return nil // cancelled meanwhile: `finish` deletes the result
        }
        metrics.countJob(.completed)
        estimator.record(completed)
        if let startedAt = completed.startedAt, let finishedAt = completed.finishedAt {
            metrics.jobSeconds.record(finishedAt.timeIntervalSince(startedAt))
        }
        return completed
    }

    private func requeueOrFail(_ job: Job, _ failure: JobFailure, retry: Bool, countsAsAttempt: Bool) async throws
        -> Job?
    {
        if retry,
            let requeued = try await repository.requeue(
                job.id, message: "Re-queued (\(failure.message))", countsAsAttempt: countsAsAttempt)
        {
            return requeued
        }
        return try await fail(job, failure)
    }

    private func fail(_ job: Job, _ failure: JobFailure) async throws -> Job? {
        guard let failed = try await repository.fail(job.id, failure: failure) else { return nil }
        metrics.countJob(.failed)
        return failed
    }

    // MARK: - Cancelling

    /// The outcome of a cancel request.
    public enum CancelResult: Sendable {
        case cancelled(Job)
        case alreadyFinished(Job)
        case notFound
    }

    /// Cancels a queued or running job. A running job is stopped by the engine (within `cancelTimeout`, else the
    /// engine counts as hung); its slot frees once it stopped.
    public func cancel(_ id: String) async throws -> CancelResult {
        guard let job = try await repository.job(id: id) else { return .notFound }
        if job.status.isTerminal { return .alreadyFinished(job) }
        cancelRequested.insert(id)
        guard let cancelled = try await repository.cancel(id) else {
            cancelRequested.remove(id)
            guard let current = try await repository.job(id: id) else { return .notFound }
            return .alreadyFinished(current)
        }
        metrics.countJob(.cancelled)
        if running.contains(id) {
            // Its runner removes the files once it let go of the job (`process`).
            await engine.cancel(jobID: id)
        } else {
            // Never started; or claimed with its runner not begun (the runner sees `cancelRequested` and skips the
            // engine); or its runner already let go, having found the job still running. Nobody else removes them.
            if cancelled.startedAt == nil { cancelRequested.remove(id) }
            files.removeUploads(of: id)
        }
        logger.info("job \(id) cancelled (was \(job.status.rawValue))")
        await notifier.statusChanged(cancelled)
        return .cancelled(cancelled)
    }

    // MARK: - Draining

    /// Waits up to the grace period for running jobs, then puts the rest back in the queue (without counting the
    /// attempt) so the next start runs them.
    private func drainRunningJobs() async {
        if !running.isEmpty {
            logger.info("draining: waiting up to \(settings.gracePeriod) for \(running.count) running job(s)")
            let gracePeriod = Task { [clock, settings] in
                try? await clock.sleep(for: settings.gracePeriod)
                self.resumeIdleWaiters()
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { idleWaiters.append($0) }
            } onCancel: {
                Task { await self.resumeIdleWaiters() }
            }
            gracePeriod.cancel()
        }
        for id in running {
            let requeued = try? await Task {
                try await self.repository.requeue(
                    id, message: "Re-queued: the server restarted", countsAsAttempt: false)
            }.value
            if let requeued {
                logger.info("job \(id) re-queued for the next start")
                await notifier.statusChanged(requeued)
            }
        }
    }

    private func resumeIdleWaiters() {
        for waiter in idleWaiters { waiter.resume() }
        idleWaiters.removeAll()
    }
}
