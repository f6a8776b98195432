/// What the worker and the queue need of an engine: its state and `hello`, jobs in and events out, a life cycle.
///
/// `EngineSupervisor` is the real one (a supervised child process); tests may use an engine that never becomes ready.
public protocol Engine: Actor {
    var state: EngineState { get }
    /// The last `hello` seen, kept while the engine restarts.
    var lastHello: EngineHello? { get async }
    /// How many times a dead engine was started again.
    var restartCount: Int { get async }

    /// The engine's `hello`, waiting up to `timeout` for the first one: engines say hello before loading models, so
    /// it comes within moments of the start. Returns at once when a hello was seen (it is kept while the engine
    /// restarts).
    /// - Returns: `nil` when none came in time, or when the engine failed or stopped before saying hello.
    func waitForHello(timeout: Duration) async -> EngineHello?

    /// The current state, then every change, until the engine stopped for good.
    func states() -> AsyncStream<EngineState>

    /// Runs the engine until `stop()` or cancellation.
    func run() async
    /// Stops the engine: running jobs get up to `timeout` to end.
    func stop(timeout: Duration)

    /// Sends a job to the ready engine.
    /// - Returns: the job's events, or `nil` when the engine is not ready (the job was not sent).
    func submit(_ request: EngineJobRequest) async -> AsyncStream<EngineJobEvent>?
    /// Asks the engine to stop a job.
    func cancel(jobID: String) async

    /// Each engine process behind this one, as clients see it (one, unless it is an `EnginePool`).
    func statuses() async -> [EngineInstanceStatus]

    /// Asks the engine to check the LoRA file at `path` and copy it into its library as `name`.
    func addLora(name: String, path: String) async -> LoraAddition
    /// Asks the engine to read its LoRA library again (a file added by hand, or by another engine of a pool).
    func rescanLoras() async
}

/// What came of asking an engine to add a LoRA to its library.
public enum LoraAddition: Sendable, Equatable {
    /// In the library, as listed (the engine's `hello` lists it too).
    case added(EngineHello.LoraListing)
    /// Nothing was added: `invalid_lora`, `lora_exists`, `lora_unsupported`, `not_ready`, `engine_unavailable`, ...
    case refused(code: String, message: String)

    /// No engine could be asked (none ready, or it stopped before answering).
    public static let engineUnavailable = LoraAddition.refused(
        code: "engine_unavailable", message: "The engine is not ready; try again shortly")
}

extension Engine {
    /// How many jobs the engine says it can run at once (1 until it said).
    public var engineConcurrency: Int {
        get async { await lastHello?.capabilities.maxConcurrentJobs ?? 1 }
    }

    public func statuses() async -> [EngineInstanceStatus] {
        [
            EngineInstanceStatus(
                index: 0, gpu: nil, state: state, slots: await lastHello?.capabilities.maxConcurrentJobs,
                restarts: await restartCount, runningJobs: nil)
        ]
    }

    public func stop() { stop(timeout: .seconds(5)) }

    /// Engines without a LoRA library.
    public func addLora(name: String, path: String) async -> LoraAddition {
        .refused(code: "lora_unsupported", message: "This engine does not apply LoRAs")
    }

    public func rescanLoras() async {}
}
