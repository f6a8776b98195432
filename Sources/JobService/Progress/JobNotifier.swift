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

    /// Adds a job (`insert` writes it) and announces it, in one turn of the notification order: a worker that claims
    /// the job the moment it is written announces `processing` only after this `queued`.
    func enqueued(_ insert: @escaping @Sendable () async throws -> (job: Job, position: Int)) async throws -> (
        job: Job, position: Int
    ) {
        try await order.run { [self] in
            let inserted = try await insert()
            await publish(inserted.job, queueChanged: true)
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
    func progressed(_ jobID: String, owner: String?, progress: JobProgress, message: String, force: Bool = false) {
        guard broadcaster.admitProgress(for: jobID, force: force) else { return }
        broadcaster.broadcast(
            ProgressUpdateMessage(
                requestId: jobID, message: message, progress: progress,
                timestamp: Date()), aboutJobOf: owner)
    }

    /// A clip of a running job can be watched: `clip_ready` (after the segment was recorded).
    func clipReady(_ jobID: String, owner: String?, live: LiveStream) {
        guard let last = live.segments.last else { return }
        broadcaster.broadcast(
            ClipReadyMessage(
                requestId: jobID, clip: last.clip, clips: live.clips, durationSeconds: live.endSeconds,
                segmentsReady: live.segments.count, playlistUrl: LiveStream.playlistURL(for: jobID),
                timestamp: Date()), aboutJobOf: owner)
    }
}
