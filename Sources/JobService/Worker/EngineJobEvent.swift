/// What the supervisor tells the runner of one job, in order. The last event is always one of `done`, `failed`
/// or `lost`, then the stream ends.
public enum EngineJobEvent: Sendable, Equatable {
    case stage(EngineStage)
    case progress(EngineProgress)
    /// A clip's live segment is complete.
    case segment(EngineSegment)
    /// The engine finished the job.
    case done(EngineDone)
    /// The engine refused or failed the job (`bad_audio`, `cancelled`, `out_of_memory`, ...).
    case failed(EngineError)
    /// The engine died or hung while running the job (`engine_crashed`, `engine_timeout`).
    case lost(JobFailure)

    var isTerminal: Bool {
        switch self {
        case .done, .failed, .lost: true
        case .stage, .progress, .segment: false
        }
    }
}

/// Where the engine is in its life, as shown by `/readyz` and `/api/config`.
public enum EngineState: Sendable, Equatable {
    /// Started, not ready yet (loading models).
    case starting
    /// Ready for jobs.
    case ready(EngineHello)
    /// Not running: crashed or failed to start; restarting after a pause.
    case unavailable(reason: String)
    /// Stopped for good (shutdown).
    case stopped

    public var hello: EngineHello? {
        if case .ready(let hello) = self { hello } else { nil }
    }

    /// `starting`, `ready`, `unavailable` or `stopped`.
    public var name: String {
        switch self {
        case .starting: "starting"
        case .ready: "ready"
        case .unavailable: "unavailable"
        case .stopped: "stopped"
        }
    }
}
