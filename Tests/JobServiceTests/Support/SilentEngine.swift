@testable import JobService

/// An engine that starts, says `hello` (or not) and never becomes ready, so submitted jobs stay queued: router tests
/// need no engine process. `run()` returns once stopped. With `ready` (and a hello) it says it is ready, so the worker
/// claims jobs, but it takes none (`submit` answers "not sent"): for tests where no job reaches the engine.
actor SilentEngine: Engine {
    private(set) var state: EngineState
    let lastHello: EngineHello?
    let restartCount = 0
    private let observers = Observers<EngineState>()
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    init(hello: EngineHello? = nil, ready: Bool = false) {
        lastHello = hello
        state = if ready, let hello { .ready(hello) } else { .starting }
    }

    /// Never waits: the hello it says was said at once.
    func waitForHello(timeout: Duration) -> EngineHello? { lastHello }

    func states() -> AsyncStream<EngineState> {
        observers.stream(startingWith: state)
    }

    func run() async {
        if state != .stopped {
            await withTaskCancellationHandler {
                await withCheckedContinuation { stopWaiters.append($0) }
            } onCancel: {
                Task { await self.stop(timeout: .zero) }
            }
        }
    }

    func stop(timeout: Duration) {
        state = .stopped
        observers.yield(.stopped)
        observers.finish()
        for waiter in stopWaiters { waiter.resume() }
        stopWaiters.removeAll()
    }

    func submit(_ request: EngineJobRequest) -> AsyncStream<EngineJobEvent>? { nil }

    func cancel(jobID: String) {}
}
