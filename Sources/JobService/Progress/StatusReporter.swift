import Foundation

/// Turns stored jobs into the API's status objects: queue position, time estimates and live progress included.
public struct StatusReporter: Sendable {
    let repository: any JobRepository
    let liveProgress: LiveProgressStore
    let estimator: ThroughputEstimator
    let maxQueueSize: Int
    /// Jobs the worker runs at once now.
    let capacity: @Sendable () async -> Int

    /// The queue at one moment, shared by the estimates of many jobs.
    typealias QueueSnapshot = ActiveJobs

    func snapshot() async throws -> QueueSnapshot {
        try await repository.activeJobs()
    }

    /// The status object of the job with `id`; `nil` when there is none. An active job is answered from the
    /// repository's cached snapshot (no query); a finished one needs one read of the job.
    public func status(ofJobWithID id: String) async throws -> JobStatusResponse? {
        let queue = try await snapshot()
        if let job = queue.job(id: id) {
            return makeStatus(of: job, queue: queue, slots: await slots(for: [job]))
        }
        guard let job = try await repository.job(id: id) else { return nil }
        return try await status(of: job)
    }

    /// The status object of one job.
    public func status(of job: Job) async throws -> JobStatusResponse {
        try await statuses(of: [job]).first!
    }

    /// Status objects of many jobs, estimated against one snapshot of the queue.
    public func statuses(of jobs: [Job]) async throws -> [JobStatusResponse] {
        let needsQueue = jobs.contains { !$0.status.isTerminal }
        let queue = needsQueue ? try await snapshot() : .empty
        let slots = await slots(for: jobs)
        return jobs.map { makeStatus(of: $0, queue: queue, slots: slots) }
    }

    /// The worker's slots, asked only when a queued job's estimate needs them (it is an actor hop).
    private func slots(for jobs: [Job]) async -> Int {
        jobs.contains { $0.status == .queued } ? max(1, await capacity()) : 1
    }

    func makeStatus(of job: Job, queue: QueueSnapshot, slots: Int) -> JobStatusResponse {
        let position = job.status == .queued ? queue.queued.firstIndex { $0.id == job.id }.map { $0 + 1 } : nil
        let estimate = estimatedSeconds(for: job, queue: queue, slots: slots)
        return JobStatusResponse(
            requestId: job.id, status: job.status, message: job.message, timestamp: job.createdAt,
            positionInQueue: position,
            estimatedTime: estimate.map(ThroughputEstimator.describe(seconds:)),
            estimatedSeconds: estimate.map { ($0 * 10).rounded() / 10 },
            resultUrl: job.status == .completed ? "/api/result/\(job.id)" : nil,
            createdAt: job.createdAt, startedAt: job.startedAt, finishedAt: job.finishedAt,
            progress: job.status == .processing ? liveProgress.progress(of: job.id) : nil,
            params: job.parameters, error: job.failure, attempts: job.attempts, result: job.output,
            segmentsReady: job.live?.segments.count ?? 0,
            playlistUrl: job.live == nil ? nil : LiveStream.playlistURL(for: job.id), batchId: job.batchId)
    }

    /// Seconds until `job` completes: its own remaining work, plus, while queued, the work ahead of it shared
    /// among the worker's slots.
    func estimatedSeconds(for job: Job, queue: QueueSnapshot, slots: Int) -> Double? {
        switch job.status {
        case .processing:
            return remainingSeconds(of: job)
        case .queued:
            let ahead = queue.queued.prefix { $0.id != job.id }
            let work =
                queue.processing.map(remainingSeconds(of:)).reduce(0, +)
                + ahead.map { estimator.expectedSeconds(forAudio: $0.audioSeconds) }.reduce(0, +)
            return work / Double(slots) + estimator.expectedSeconds(forAudio: job.audioSeconds)
        case .completed, .failed, .cancelled:
            return nil
        }
    }

    private func remainingSeconds(of job: Job) -> Double {
        let live = liveProgress.progress(of: job.id)
        if let eta = live?.etaSeconds { return max(0, eta) }
        return estimator.expectedSeconds(forAudio: job.audioSeconds) * (1 - (live?.progress ?? 0))
    }

    /// The `queue_update` message for the queue now.
    public func queueUpdate() async throws -> QueueUpdateMessage {
        let queue = try await snapshot()
        return QueueUpdateMessage(
            timestamp: Date(), queueSize: queue.queued.count,
            processingCount: queue.processing.count, maxQueueSize: maxQueueSize,
            maxConcurrent: await capacity(), queuedIds: queue.queued.map(\.id),
            processingIds: queue.processing.map(\.id),
            owners: Dictionary(uniqueKeysWithValues: queue.all.compactMap { job in job.owner.map { (job.id, $0) } }))
    }

    /// `GET /api/queue`: processing jobs, then queued ones in order.
    func queueResponse() async throws -> QueueResponse {
        let queue = try await snapshot()
        let slots = max(1, await capacity())
        let jobs = queue.processing + queue.queued
        return QueueResponse(
            queueSize: queue.queued.count, processingCount: queue.processing.count,
            maxQueueSize: maxQueueSize, maxConcurrent: slots,
            requests: jobs.map { makeStatus(of: $0, queue: queue, slots: slots) })
    }
}
