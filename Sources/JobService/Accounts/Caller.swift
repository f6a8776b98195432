/// Who sent a request: nobody in particular when auth is off, or the holder of an API key.
public enum Caller: Sendable, Equatable {
    /// Auth is off: the single-user local service, where every job is everyone's.
    case anonymous
    case key(APIKey)

    /// The `Job.owner` of jobs this caller submits (`nil` when auth is off).
    public var ownerID: String? {
        if case .key(let key) = self { return key.id }
        return nil
    }

    /// Whether the caller sees every job (auth off, or an admin key).
    public var seesAllJobs: Bool {
        switch self {
        case .anonymous: true
        case .key(let key): key.isAdmin
        }
    }

    /// Whether `job` exists for this caller: another key's job is answered as unknown (404), never 403, so ids
    /// cannot be probed.
    public func canSee(_ job: Job) -> Bool {
        seesAllJobs || job.owner == ownerID
    }
}
