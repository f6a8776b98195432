import Foundation
import Logging

/// Tells WebSocket clients about job changes: `status_update` for the job, then `queue_update` when the queue
/// changed; and in-process observers (`updates()`), in the same order.
public struct JobNotifier: Sendable {
    let broadcaster: ProgressBroadcaster
    let reporter: StatusReporter
    let logger: Logger

    /// Keeps `statusChanged` broadcasts in the order of the calls.
    let order = SerialTasks()
    private let observers = Observers<Job>()

    /// Every job change announced from now on, in order.
    func updates() -> AsyncStream<Job> {
        observers.stream()
    }

    /// Adds jobs (`insert` writes them) and announces them, in one turn of the notification order: each one's
    /// `status_update`, then the queue's change once, after the last. A worker that claims a job the moment it is
    /// written announces `processing` only after this `queued`.
    func enqueuedAll(_ insert: @escaping @Sendable () async throws -> [(job: Job, position: Int)]) async throws
        -> [(job: Job, position: Int)]
    {
        try await order.run { [self] in
            let inserted = try await insert()
            for (index, entry) in inserted.enumerated() {
                await publish(entry.job, queueChanged: index == inserted.count - 1)
            }
            return inserted
        }
    }

    /// A job's status or message changed.
    func statusChanged(_ job: Job, queueChanged: Bool = true) async {
        _ = try? await order.run { [self] in await publish(job, queueChanged: queueChanged) }
    }

    private func publish(_ job: Job, queueChanged: Bool) async {
        defer { observers.yield(job) }
        do {
            let status = StatusUpdateMessage(status: try await reporter.status(of: job))
            guard queueChanged else { return broadcaster.broadcast(status, aboutJobOf: job.owner) }
            do {
                broadcaster.broadcast(status, aboutJobOf: job.owner, then: try await reporter.queueUpdate())
            } catch {
                broadcaster.broadcast(status, aboutJobOf: job.owner) // the job's news still goes out
                throw error
            }
        } catch {
            logger.warning("could not publish the status of \(job.id): \(error)")
        }
    }

    /// A running job advanced; rate-limited per job unless `force` (stage changes).
    func progressed(_ job: Job, progress: JobProgress, message: String, force: Bool = false) {
        guard broadcaster.admitProgress(for: job.id, force: force) else { return }
        broadcaster.broadcast(
            ProgressUpdateMessage(
                requestId: job.id, batchId: job.batchId, message: message, progress: progress,
                timestamp: Date()), aboutJobOf: job.owner)
    }

    /// A clip of a running job can be watched: `clip_ready` (after the segment was recorded).
    func clipReady(_ job: Job, live: LiveStream) {
        guard let last = live.segments.last else { return }
        let jobID = job.id
        broadcaster.broadcast(
            ClipReadyMessage(
                requestId: jobID, batchId: job.batchId, clip: last.clip, clips: live.clips,
                durationSeconds: live.endSeconds,
                segmentsReady: live.segments.count, playlistUrl: LiveStream.playlistURL(for: jobID),
                timestamp: Date()), aboutJobOf: job.owner)
    }
}
