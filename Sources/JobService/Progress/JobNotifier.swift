import Foundation
import Logging

/// Tells WebSocket clients about job changes: `status_update` for the job, then `queue_update` when the queue
/// changed.
public struct JobNotifier: Sendable {
    let broadcaster: ProgressBroadcaster
    let reporter: StatusReporter
    let logger: Logger

    /// Keeps `statusChanged` broadcasts in the order of the calls.
    let order = SerialTasks()

    /// A job's status or message changed.
    func statusChanged(_ job: Job, queueChanged: Bool = true) async {
        await order.run { [broadcaster, reporter, logger] in
            do {
                let status = StatusUpdateMessage(status: try await reporter.status(of: job))
                if queueChanged {
                    broadcaster.broadcast(status, then: try await reporter.queueUpdate())
                } else {
                    broadcaster.broadcast(status)
                }
            } catch {
                logger.warning("could not publish the status of \(job.id): \(error)")
            }
        }
    }

    /// A running job advanced; rate-limited per job unless `force` (stage changes).
    func progressed(_ jobID: String, progress: JobProgress, message: String, force: Bool = false) {
        guard broadcaster.admitProgress(for: jobID, force: force) else { return }
        broadcaster.broadcast(ProgressUpdateMessage(requestId: jobID, message: message, progress: progress,
                                                    timestamp: Date()))
    }
}
