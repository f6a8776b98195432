import Foundation
import Logging

/// Keeps one engine process alive and speaks the engine protocol with it.
///
/// `run()` starts the engine, waits for `hello` + `ready`, sends `heartbeat`s, and routes each job's events to the
/// job's stream. When the engine dies (`engine_crashed`) or stops answering (`engine_timeout`: no heartbeat answer,
/// no `ready` in time, a cancelled job that does not stop), the jobs it was running end with `lost`, and the engine
/// is started again after a pause that doubles per failure (reset once an engine stays up for a minute).
public actor EngineSupervisor: Engine {
    public private(set) var state: EngineState = .starting
    /// The last `hello` seen, kept while the engine restarts.
    public private(set) var lastHello: EngineHello?
    public private(set) var restartCount = 0

    private let configuration: EngineConfiguration
    private let logger: Logger
    private let clock: any ServiceClock
    private let stateObservers = Observers<EngineState>()
    /// Each `hello`, and `nil` when the engine fails or stops before saying one (what `waitForHello` waits on).
    private let helloObservers = Observers<EngineHello?>()

    private var process: EngineProcess?
    // Instants of `clock`.
    private var processStartedAt: Duration = .zero
    private var lastSignOfLife: Duration = .zero
    private var nextHeartbeat: Duration = .zero
    private var heartbeatSequence = 0
    /// Why the current process is being killed, set just before killing it.
    private var killReason: JobFailure?
    private var loadFailure: String?
    private var activeJobs: [String: AsyncStream<EngineJobEvent>.Continuation] = [:]
    private var cancelDeadlines: [String: Duration] = [:]
    /// `add_lora` requests waiting for their answer, by request id.
    private var loraAdditions: [String: CheckedContinuation<LoraAddition, Never>] = [:]
    private var isStopping = false
    private var stopDeadline: Duration?

    /// - Parameter clock: times heartbeats, time limits and restart pauses.
    public init(configuration: EngineConfiguration, logger: Logger, clock: any ServiceClock = SystemClock()) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
    }

    // MARK: - Jobs

    /// Sends a job to the ready engine.
    /// - Returns: the job's events, or `nil` when the engine is not ready (the job was not sent).
    public func submit(_ request: EngineJobRequest) -> AsyncStream<EngineJobEvent>? {
        guard case .ready = state, let process, !isStopping else { return nil }
        let (events, sink) = AsyncStream.makeStream(of: EngineJobEvent.self)
        activeJobs[request.jobId] = sink
        process.send(.job(request))
        return events
    }

    /// Asks the engine to stop a job. If it has not ended the job within `cancelTimeout`, the engine counts as hung.
    public func cancel(jobID: String) {
        guard activeJobs[jobID] != nil, let process else { return }
        process.send(.cancel(jobID: jobID))
        cancelDeadlines[jobID] = clock.now + configuration.cancelTimeout
    }

    // MARK: - LoRA library

    /// Asks the ready engine to check the LoRA file at `path` and copy it into its library as `name`. The engine
    /// says `hello` again (listing it) before answering; an engine that stops meanwhile answers `engine_unavailable`.
    public func addLora(name: String, path: String) async -> LoraAddition {
        guard case .ready = state, let process, !isStopping else { return .engineUnavailable }
        let requestID = UUID().uuidString
        return await withCheckedContinuation { continuation in
            loraAdditions[requestID] = continuation
            process.send(.addLora(requestID: requestID, name: name, path: path))
        }
    }

    /// Asks the engine to read its LoRA library again, and waits (up to the heartbeat timeout) for the new `hello`,
    /// so that jobs sent afterwards may name what it found.
    public func rescanLoras() async {
        guard case .ready = state, let process, !isStopping else { return }
        let hellos = helloObservers.stream() // before sending: the answer cannot slip past
        process.send(.rescan)
        _ = await firstHello(of: hellos, within: configuration.heartbeatTimeout)
    }

    private func answerLoraAddition(_ requestID: String, with outcome: LoraAddition) {
        loraAdditions.removeValue(forKey: requestID)?.resume(returning: outcome)
    }

    // MARK: - Life cycle

    public func states() -> AsyncStream<EngineState> {
        stateObservers.stream(startingWith: state)
    }

    public func waitForHello(timeout: Duration) async -> EngineHello? {
        if let lastHello { return lastHello }
        switch state {
        case .unavailable, .stopped: return nil
        case .starting, .ready: break
        }
        return await firstHello(of: helloObservers.stream(), within: timeout)
    }

    /// The first of `hellos` (`nil` when the engine failed before saying one), or `nil` once `timeout` has passed on
    /// the supervisor's clock.
    private func firstHello(of hellos: AsyncStream<EngineHello?>, within timeout: Duration) async -> EngineHello? {
        let clock = self.clock
        return await withTaskGroup(of: EngineHello?.self) { group in
            group.addTask {
                for await hello in hellos { return hello }
                return nil
            }
            group.addTask {
                try? await clock.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
    }

    /// Asks the engine to shut down (`shutdown`: it cancels running jobs and exits); kills it if it is still
    /// running after `timeout`. `run()` returns once it is gone.
    public func stop(timeout: Duration) {
        guard !isStopping else { return }
        isStopping = true
        guard let process else {
            setState(.stopped)
            return
        }
        if case .ready = state {
            stopDeadline = clock.now + timeout
            process.send(.shutdown)
        } else {
            // Still loading (or never going to be ready): nothing to finish.
            stopDeadline = clock.now
            kill(process, JobFailure(code: "interrupted", message: "The engine was stopped while starting"))
        }
    }

    /// Runs engines, one after another, until `stop()` or cancellation.
    public func run() async {
        var backoff = configuration.restartBackoff
        while !isStopping && !Task.isCancelled {
            let startedAt = clock.now
            let failure = await runOneProcess()
            endActiveJobs(with: failure)
            if isStopping || Task.isCancelled { break }
            restartCount += 1
            setState(.unavailable(reason: failure.message))
            if clock.now - startedAt > .seconds(60) { backoff = configuration.restartBackoff }
            logger.warning("engine stopped (\(failure.message)); restarting in \(backoff)")
            await pause(for: backoff)
            backoff = min(backoff * 2, configuration.maxRestartBackoff)
        }
        setState(.stopped)
        stateObservers.finish()
        helloObservers.finish()
    }

    /// Sleeps, waking early for `stop()` or cancellation.
    private func pause(for duration: Duration) async {
        let end = clock.now + duration
        while !isStopping, !Task.isCancelled, clock.now < end {
            try? await clock.sleep(for: min(.milliseconds(100), end - clock.now))
        }
    }

    /// Starts one engine process and serves it until it exits.
    /// - Returns: what the jobs still running on it should be told.
    private func runOneProcess() async -> JobFailure {
        let process = EngineProcess(
            commandLine: configuration.commandLine, environment: configuration.extraEnvironment,
            workingDirectory: configuration.workingDirectory, logger: logger)
        self.process = process
        killReason = nil
        loadFailure = nil
        processStartedAt = clock.now
        lastSignOfLife = clock.now
        setState(.starting)
        logger.info("starting engine: \(process.commandLine.joined(separator: " "))")

        let exit = await withTaskGroup(of: EngineExit?.self) { group in
            group.addTask { await process.run() }
            group.addTask {
                await self.watch(process)
                return nil
            }
            for await event in process.events {
                handle(event, from: process)
            }
            // The event stream ends when the process has exited; `run()` returns at the same time.
            var exit: EngineExit?
            while let result = await group.next() {
                if let result {
                    exit = result
                    group.cancelAll()
                }
            }
            return exit ?? .exited(code: -1)
        }
        self.process = nil
        if let killReason { return killReason }
        var message = "The engine \(exit)"
        if let loadFailure { message += ": \(loadFailure)" }
        let tail = process.lastErrorLines().suffix(3).joined(separator: " | ")
        if !tail.isEmpty, loadFailure == nil { message += " (last output: \(tail))" }
        if isStopping, case .exited(code: 0) = exit {
            return JobFailure(code: "interrupted", message: "The engine was shut down")
        }
        return JobFailure(code: "engine_crashed", message: message)
    }

    /// Enforces the time limits while `process` runs: start-up, heartbeats, cancels, shutdown.
    private func watch(_ process: EngineProcess) async {
        while !Task.isCancelled {
            try? await clock.sleep(for: .milliseconds(100))
            let now = clock.now
            if let stopDeadline, now >= stopDeadline {
                kill(process, JobFailure(code: "interrupted", message: "The engine did not shut down in time"))
                process.kill() // again, until it is gone (this task ends when the process exits)
                continue
            }
            switch state {
            case .starting:
                if now - processStartedAt > configuration.startupTimeout {
                    kill(
                        process,
                        JobFailure(
                            code: "engine_timeout",
                            message: "The engine was not ready after \(configuration.startupTimeout)"))
                    return
                }
            case .ready:
                if now >= nextHeartbeat {
                    heartbeatSequence += 1
                    process.send(.heartbeat(seq: heartbeatSequence))
                    nextHeartbeat = now + configuration.heartbeatInterval
                }
                if now - lastSignOfLife > configuration.heartbeatTimeout {
                    kill(
                        process,
                        JobFailure(
                            code: "engine_timeout",
                            message: "The engine stopped answering (no heartbeat for \(configuration.heartbeatTimeout))"
                        ))
                    return
                }
                if let late = cancelDeadlines.first(where: { now >= $0.value }) {
                    kill(
                        process,
                        JobFailure(
                            code: "engine_timeout",
                            message:
                                "The engine did not stop cancelled job \(late.key) within \(configuration.cancelTimeout)"
                        ))
                    return
                }
            case .unavailable, .stopped:
                break
            }
        }
    }

    private func kill(_ process: EngineProcess, _ reason: JobFailure) {
        guard killReason == nil else { return }
        logger.error("killing engine: \(reason.message)")
        killReason = reason
        process.kill()
    }

    // MARK: - Events

    private func handle(_ event: EngineEvent, from process: EngineProcess) {
        lastSignOfLife = clock.now
        switch event {
        case .hello(let hello):
            guard hello.protocolVersion == EngineEvent.protocolVersion else {
                kill(
                    process,
                    JobFailure(
                        code: "engine_crashed",
                        message:
                            "The engine speaks protocol \(hello.protocolVersion); this service speaks \(EngineEvent.protocolVersion)"
                    ))
                return
            }
            lastHello = hello
            helloObservers.yield(hello)
            logger.info("engine hello: \(hello.engine) \(hello.engineVersion) on \(hello.capabilities.device)")
            // A hello after `ready` follows a change of the LoRA library: the ready state carries it.
            if case .ready = state { setState(.ready(hello)) }
        case .ready(let loadSeconds):
            guard lastHello != nil, let hello = lastHello, case .starting = state else {
                logger.warning("engine sent `ready` out of order; ignored")
                return
            }
            logger.info("engine ready after \(loadSeconds) s of loading")
            nextHeartbeat = clock.now + configuration.heartbeatInterval
            setState(.ready(hello))
        case .stage, .progress, .segment, .done, .error:
            if let jobID = event.jobID {
                deliver(event, to: jobID)
            } else if case .error(let error) = event {
                logger.error("engine error: \(error.code): \(error.message)")
                if error.code == "load_failed" { loadFailure = error.message }
            }
        case .heartbeat:
            break
        case .bye:
            logger.info("engine said bye")
        case .loraAdded(let requestID, let lora):
            answerLoraAddition(requestID, with: .added(lora))
        case .loraRefused(let requestID, let code, let message):
            answerLoraAddition(requestID, with: .refused(code: code, message: message))
        case .unreadable(let line, let reason):
            logger.warning("ignoring engine output (\(reason)): \(line.prefix(200))")
        }
    }

    private func deliver(_ event: EngineEvent, to jobID: String) {
        guard let sink = activeJobs[jobID] else {
            logger.debug("event for a job the engine is not running: \(jobID)")
            return
        }
        let jobEvent: EngineJobEvent
        switch event {
        case .stage(let stage): jobEvent = .stage(stage)
        case .progress(let progress): jobEvent = .progress(progress)
        case .segment(let segment): jobEvent = .segment(segment)
        case .done(let done): jobEvent = .done(done)
        case .error(let error): jobEvent = .failed(error)
        default: return
        }
        sink.yield(jobEvent)
        if jobEvent.isTerminal {
            sink.finish()
            activeJobs[jobID] = nil
            cancelDeadlines[jobID] = nil
        }
    }

    private func endActiveJobs(with failure: JobFailure) {
        for (_, sink) in activeJobs {
            sink.yield(.lost(failure))
            sink.finish()
        }
        activeJobs.removeAll()
        cancelDeadlines.removeAll()
        for (_, waiter) in loraAdditions { waiter.resume(returning: .engineUnavailable) }
        loraAdditions.removeAll()
    }

    private func setState(_ newState: EngineState) {
        guard newState != state else { return }
        state = newState
        stateObservers.yield(newState)
        if lastHello == nil {
            switch newState {
            case .unavailable, .stopped: helloObservers.yield(nil)
            case .starting, .ready: break
            }
        }
    }
}
