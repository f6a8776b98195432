/// Where a job is in its life. The raw values are the public API's status strings.
///
/// ```
/// queued ──▶ processing ──▶ completed
///   │            │  └──────▶ failed
///   │            ├─────────▶ cancelled
///   │            └─────────▶ queued     (interrupted: engine lost on shutdown or restart, retryable error)
///   └──────────────────────▶ cancelled
/// ```
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case queued
    case processing
    case completed
    case failed
    case cancelled

    /// Whether the job is over: nothing will change its status again.
    public var isTerminal: Bool {
        switch self {
        case .completed, .failed, .cancelled: true
        case .queued, .processing: false
        }
    }

    /// The statuses a job may move to from this one.
    public var allowedNextStatuses: Set<JobStatus> {
        switch self {
        case .queued: [.processing, .cancelled]
        case .processing: [.completed, .failed, .cancelled, .queued]
        case .completed, .failed, .cancelled: []
        }
    }

    /// Whether moving from this status to `next` is allowed.
    public func canMove(to next: JobStatus) -> Bool {
        allowedNextStatuses.contains(next)
    }
}
