import Foundation

/// What a webhook reports about a job.
public enum WebhookEvent: String, Codable, Sendable, CaseIterable {
    case started = "job.started"
    case progress = "job.progress"
    case completed = "job.completed"
    case failed = "job.failed"
    case cancelled = "job.cancelled"

    /// The event a job's move to `status` is, if any (`queued` is the answer to the submit itself).
    init?(movingTo status: JobStatus) {
        switch status {
        case .queued: return nil
        case .processing: self = .started
        case .completed: self = .completed
        case .failed: self = .failed
        case .cancelled: self = .cancelled
        }
    }
}

/// A webhook's JSON body (the Standard Webhooks shape): the event, when it happened and the job's status object.
struct WebhookPayload: Encodable, Sendable {
    var type: WebhookEvent
    var timestamp: Date
    var data: JobStatusResponse
}
