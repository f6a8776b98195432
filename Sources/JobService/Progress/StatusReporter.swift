import Foundation

/// Turns stored jobs into the API's status objects: queue position, time estimates and live progress included.
public struct StatusReporter: Sendable {
    let repository: JobRepository
    let liveProgress: LiveProgressStore
    let estimator: ThroughputEstimator
    let maxQueueSize: Int
    /// Jobs the worker runs at once now.
    let capacity: @Sendable () async -> Int

    /// The queue at one moment, shared by the estimates of many jobs.
    struct QueueSnapshot {
        var queued: [Job]
        var processing: [Job]
    }

    func snapshot() async throws -> QueueSnapshot {
        QueueSnapshot(queued: try await repository.queuedJobs(), processing: try await repository.processingJobs())
    }

    /// The status object of one job.
    public func status(of job: Job) async throws -> JobStatusResponse {
        try await statuses(of: [job]).first!
    }

    /// Status objects of many jobs, estimated against one snapshot of the queue.
    public func statuses(of jobs: [Job]) async throws -> [JobStatusResponse] {
        let needsQueue = jobs.contains { !$0.status.isTerminal }
        let queue = needsQueue ? try await snapshot() : QueueSnapshot(queued: [], processing: [])
        let slots = needsQueue ? max(1, await capacity()) : 1
        return jobs.map { makeStatus(of: $0, queue: queue, slots: slots) }
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
            params: job.parameters, error: job.failure, attempts: job.attempts, result: job.output)
    }

    /// Seconds until `job` completes: its own remaining work, plus, while queued, the work ahead of it shared
    /// among the worker's slots.
    func estimatedSeconds(for job: Job, queue: QueueSnapshot, slots: Int) -> Double? {
        switch job.status {
        case .processing:
            return remainingSeconds(of: job)
        case .queued:
            let ahead = queue.queued.prefix { $0.id != job.id }
            let work = queue.processing.map(remainingSeconds(of:)).reduce(0, +)
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
        return QueueUpdateMessage(timestamp: Date(), queueSize: queue.queued.count,
                                  processingCount: queue.processing.count, maxQueueSize: maxQueueSize,
                                  maxConcurrent: await capacity(), queuedIds: queue.queued.map(\.id),
                                  processingIds: queue.processing.map(\.id))
    }

    /// `GET /api/queue`: processing jobs, then queued ones in order.
    func queueResponse() async throws -> QueueResponse {
        let queue = try await snapshot()
        let slots = max(1, await capacity())
        let jobs = queue.processing + queue.queued
        return QueueResponse(queueSize: queue.queued.count, processingCount: queue.processing.count,
                             maxQueueSize: maxQueueSize, maxConcurrent: slots,
                             requests: jobs.map { makeStatus(of: $0, queue: queue, slots: slots) })
    }
}
