import Foundation

@testable import JobService

/// An engine the test plays by hand: ready at once with the fake engine's hello; each job it is sent waits for the
/// test (`nextJob()`), which sends the job's events one by one and can look at the service between two of them.
/// A cancelled job ends with `error` `cancelled`, as a real engine's does.
actor ScriptedEngine: Engine {
    /// A job on this engine: what the service sent, and the way to answer it.
    struct RunningJob: Sendable {
        let request: EngineJobRequest
        let events: AsyncStream<EngineJobEvent>.Continuation

        func send(_ event: EngineJobEvent) {
            events.yield(event)
            if event.isTerminal { events.finish() }
        }
    }

    private(set) var state: EngineState
    let lastHello: EngineHello?
    let restartCount = 0
    private let observers = Observers<EngineState>()
    private let submissions = AsyncStream.makeStream(of: RunningJob.self)
    private var running: [String: RunningJob] = [:]
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []
    /// The LoRAs it was asked to add (it adds each) and how often it was asked to read its library again.
    private(set) var addedLoras: [String] = []
    private(set) var rescans = 0

    func addLora(name: String, path: String) -> LoraAddition {
        addedLoras.append(name)
        return .added(
            EngineHello.LoraListing(
                name: name, sizeBytes: 1, rank: 1, style: "kijai", targets: 1, modules: ["ffn.0"], fits: true,
                reason: nil))
    }

    func rescanLoras() { rescans += 1 }

    init(hello: EngineHello) {
        lastHello = hello
        state = .ready(hello)
    }

    /// The next job the service sends (in order), waiting up to `timeout` for it.
    nonisolated func nextJob(timeout: Duration = .seconds(90)) async throws -> RunningJob {
        try await TestSupport.withTimeout(timeout) {
            for await job in self.submissions.stream { return job }
            throw CancellationError()
        }
    }

    func waitForHello(timeout: Duration) -> EngineHello? { lastHello }

    func states() -> AsyncStream<EngineState> {
        observers.stream(startingWith: state)
    }

    func run() async {
        guard state != .stopped else { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { stopWaiters.append($0) }
        } onCancel: {
            Task { await self.stop(timeout: .zero) }
        }
    }

    func stop(timeout: Duration) {
        for job in running.values { job.send(.failed(Self.cancelled(job.request.jobId))) }
        running.removeAll()
        state = .stopped
        observers.yield(.stopped)
        observers.finish()
        for waiter in stopWaiters { waiter.resume() }
        stopWaiters.removeAll()
    }

    func submit(_ request: EngineJobRequest) -> AsyncStream<EngineJobEvent>? {
        guard case .ready = state else { return nil }
        let (events, continuation) = AsyncStream.makeStream(of: EngineJobEvent.self)
        let job = RunningJob(request: request, events: continuation)
        running[request.jobId] = job
        submissions.continuation.yield(job)
        return events
    }

    func cancel(jobID: String) {
        running.removeValue(forKey: jobID)?.send(.failed(Self.cancelled(jobID)))
    }

    private static func cancelled(_ jobID: String) -> EngineError {
        EngineError(jobId: jobID, code: "cancelled", message: "Cancelled", retryable: false)
    }
}
