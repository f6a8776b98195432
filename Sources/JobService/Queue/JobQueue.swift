import Foundation
import Hummingbird
import Logging

/// The job queue as the controllers see it: submitting, cancelling, statuses, the queue, the engine's capabilities,
/// notifications, wake-ups and the drain state.
///
/// It puts together the store (`JobRepository`), the worker that runs jobs on the engine, the status reporter
/// (positions, estimates, live progress) and the notifier (WebSocket fan-out), so a controller needs this one
/// dependency instead of all of them.
public struct JobQueue: Sendable {
    public let repository: any JobRepository
    public let worker: JobWorker
    public let engine: any Engine
    public let broadcaster: ProgressBroadcaster
    public let metrics: ServiceMetrics
    let reporter: StatusReporter
    let notifier: JobNotifier
    let maxQueueSize: Int
    /// Refuses uploads while the data folder's disk is nearly full.
    public let diskWatermark: LowDiskWatermark

    /// Assembles the queue around `repository` and `engine`; the throughput estimate learns from the last completed
    /// jobs.
    /// - Parameter diskSpace: tells the data folder's free space (the low-disk watermark).
    public init(
        repository: any JobRepository, engine: any Engine, files: JobFiles, configuration: ServiceConfiguration,
        clock: any ServiceClock = SystemClock(), diskSpace: DiskSpace = .system, logger: Logger
    ) async throws {
        let estimator = ThroughputEstimator(prior: ThroughputEstimator.prior(forEngine: configuration.engine.name))
        for job in try await repository.recentCompletedJobs(limit: 20).reversed() { estimator.record(job) }
        let liveProgress = LiveProgressStore()
        let override = configuration.maxConcurrentJobs
        let slots: @Sendable () async -> Int = { if let override { override } else { await engine.engineConcurrency } }
        let reporter = StatusReporter(
            repository: repository, liveProgress: liveProgress, estimator: estimator,
            maxQueueSize: configuration.maxQueueSize, capacity: slots)
        let broadcaster = ProgressBroadcaster(clock: clock)
        let notifier = JobNotifier(broadcaster: broadcaster, reporter: reporter, logger: logger)
        let metrics = ServiceMetrics()
        self.repository = repository
        self.engine = engine
        self.broadcaster = broadcaster
        self.metrics = metrics
        self.reporter = reporter
        self.notifier = notifier
        self.maxQueueSize = configuration.maxQueueSize
        diskWatermark = LowDiskWatermark(
            directory: configuration.dataDirectory, minimumFreeBytes: configuration.minFreeDiskBytes, space: diskSpace)
        worker = JobWorker(
            repository: repository, engine: engine, files: files, liveProgress: liveProgress, notifier: notifier,
            estimator: estimator, metrics: metrics, logger: logger,
            settings: .init(maxAttempts: configuration.maxAttempts, gracePeriod: configuration.shutdownGracePeriod),
            clock: clock, slots: slots)
    }

    // MARK: - Submitting

    /// Whether the service is stopping: new jobs are refused.
    public var isDraining: Bool { worker.isDraining }

    /// Refuses at once, before a large body is read: 503 `shutting_down` while draining, 429 `queue_full`, 507
    /// `insufficient_storage` below the low-disk watermark.
    /// With `maxQueuedForOwner`, also 429 `key_queue_full` when `owner` already has that many jobs queued.
    func checkAcceptingJobs(owner: String? = nil, count: Int = 1, maxQueuedForOwner: Int? = nil) async throws {
        guard !isDraining else { throw APIError.shuttingDown }
        do {
            try await repository.activeJobs().checkRoom(
                for: owner, count: count, maxQueueSize: maxQueueSize, maxQueuedForOwner: maxQueuedForOwner)
        } catch let full as OwnerQueueFull {
            throw keyQueueFullError(full)
        } catch is QueueFull {
            throw try await queueFullError()
        }
        try diskWatermark.checkRoom()
    }

    /// Stores `job` at the end of the queue and announces it, in one turn of the notification order (so `queued`
    /// goes out before the worker's `processing`); wakes the worker.
    /// - Returns: the stored job and its 1-based place in the queue.
    /// - Parameter maxQueuedForOwner: the most queued jobs of `job.owner` (429 `key_queue_full` beyond).
    func submit(_ job: Job, maxQueuedForOwner: Int? = nil) async throws -> (job: Job, position: Int) {
        try await submitAll([job], maxQueuedForOwner: maxQueuedForOwner)[0]
    }

    /// Stores all of `jobs` (a batch, one owner's) or none, as `submit` does one.
    func submitAll(_ jobs: [Job], maxQueuedForOwner: Int? = nil) async throws -> [(job: Job, position: Int)] {
        let stored: [(job: Job, position: Int)]
        do {
            stored = try await notifier.enqueuedAll { [repository, maxQueueSize] in
                try await repository.enqueueAll(jobs, maxQueueSize: maxQueueSize, maxQueuedForOwner: maxQueuedForOwner)
            }
        } catch is QueueFull {
            throw try await queueFullError()
        } catch let full as OwnerQueueFull {
            throw keyQueueFullError(full)
        }
        for _ in stored { metrics.countJob(.queued) }
        worker.wakeUp()
        return stored
    }

    /// 429 `queue_full`, with `Retry-After` set to the expected wait for the first queued job to start.
    private func queueFullError() async throws -> APIError {
        let queue = try await reporter.snapshot()
        let slots = max(1, await worker.capacity())
        let wait = queue.queued.first.flatMap { reporter.estimatedSeconds(for: $0, queue: queue, slots: slots) } ?? 60
        let firstJobSeconds =
            queue.queued.first.map { reporter.estimator.expectedSeconds(forAudio: $0.audioSeconds) } ?? 0
        let retryAfter = Int(min(3600, max(5, wait - firstJobSeconds)).rounded(.up))
        return .tooManyRequests(
            "queue_full", "The queue is full (\(maxQueueSize) requests); try again in about \(retryAfter) s.",
            retryAfter: retryAfter)
    }

    /// 429 `key_queue_full`, with `Retry-After` set to about one job's run: the earliest a queued job of the key
    /// can have started.
    private func keyQueueFullError(_ full: OwnerQueueFull) -> APIError {
        let retryAfter = Int(min(3600, max(5, reporter.estimator.expectedSeconds(forAudio: 10))).rounded(.up))
        return .tooManyRequests(
            "key_queue_full",
            "This key already has \(full.queued) requests queued, its most; try again when one has started (in about \(retryAfter) s).",
            retryAfter: retryAfter)
    }

    /// Cancels a queued or running job.
    public func cancel(_ id: String) async throws -> JobWorker.CancelResult {
        try await worker.cancel(id)
    }

    // MARK: - Reading

    public func job(id: String) async throws -> Job? {
        try await repository.job(id: id)
    }

    /// The status object of the job with `id`; `nil` when there is none.
    public func status(ofJobWithID id: String) async throws -> JobStatusResponse? {
        try await reporter.status(ofJobWithID: id)
    }

    public func status(of job: Job) async throws -> JobStatusResponse {
        try await reporter.status(of: job)
    }

    /// Status objects of many jobs, estimated against one snapshot of the queue.
    func statuses(of jobs: [Job]) async throws -> [JobStatusResponse] {
        try await reporter.statuses(of: jobs)
    }

    /// One page of history, newest first, optionally of one status; plus the total count.
    func page(status: JobStatus?, owner: String? = nil, limit: Int, offset: Int) async throws -> (
        statuses: [JobStatusResponse], total: Int
    ) {
        let page = try await repository.list(status: status, owner: owner, limit: limit, offset: offset)
        return (try await reporter.statuses(of: page.jobs), page.total)
    }

    /// `GET /api/queue`.
    func queueResponse() async throws -> QueueResponse {
        try await reporter.queueResponse()
    }

    /// The `queue_update` message for the queue now.
    func queueUpdate() async throws -> QueueUpdateMessage {
        try await reporter.queueUpdate()
    }

    /// Jobs run at once: the configured override, else what the engine said it can do.
    public func capacity() async -> Int {
        await worker.capacity()
    }

    /// Every job change announced from now on (a status or message changed), in order.
    public func updates() -> AsyncStream<Job> {
        notifier.updates()
    }

    /// The metrics, with the queue's gauges brought up to date.
    func renderMetrics() async throws -> String {
        let counts = try await repository.countsByStatus()
        metrics.queueDepth.set(Double(counts[.queued] ?? 0))
        metrics.jobsProcessing.set(Double(counts[.processing] ?? 0))
        metrics.showEngines(await engine.statuses())
        return metrics.render()
    }

    // MARK: - Stopping

    /// Stops taking jobs, waits for the running ones (or re-queues them) and the engine, then closes WebSocket streams.
    public func drain() async {
        await worker.drain()
        broadcaster.finishAll()
    }
}
