import Foundation
import Logging
import Subprocess
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How an engine process ended.
public enum EngineExit: Sendable, Equatable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(signal: Int32)
    case failedToStart(reason: String)

    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        case .failedToStart(let reason): "could not be started: \(reason)"
        }
    }
}

/// One run of the engine program: starts it, writes commands to its stdin, turns its stdout lines into
/// `events`, and logs its stderr (keeping the last lines for crash reports).
///
/// The process lives exactly as long as `run()`: cancelling the task that runs it stops the program
/// (SIGTERM to its process group, SIGKILL 2 s later); `kill()` stops it at once.
final class EngineProcess: Sendable {
    /// Engine events, in order; finishes once the process has exited.
    let events: AsyncStream<EngineEvent>
    let commandLine: [String]

    private let environment: [String: String]
    private let workingDirectory: String?
    private let logger: Logger
    private let eventSink: AsyncStream<EngineEvent>.Continuation
    private let commands: AsyncStream<String>
    private let commandSink: AsyncStream<String>.Continuation
    /// The running process, and whether a kill was asked for (a kill before the process exists lands at start).
    private let control = Mutex<(processID: Int32?, isKilled: Bool)>((nil, false))
    private let stderrTail = Mutex<[String]>([])
    private static let stderrTailLines = 20

    init(commandLine: [String], environment: [String: String] = [:], workingDirectory: String? = nil, logger: Logger) {
        self.commandLine = commandLine
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.logger = logger
        (events, eventSink) = AsyncStream.makeStream(of: EngineEvent.self)
        (commands, commandSink) = AsyncStream.makeStream(of: String.self)
    }

    /// Queues one command for the engine's stdin.
    func send(_ command: EngineCommand) {
        commandSink.yield(command.encoded() + "\n")
    }

    /// Stops the engine and everything it started now (SIGKILL to its process group).
    func kill() {
        let pid = control.withLock { control in
            control.isKilled = true
            return control.processID
        }
        if let pid { Self.killGroup(of: pid) }
    }

    private static func killGroup(of pid: Int32) {
        _ = Glibc.kill(-pid, SIGKILL)
        _ = Glibc.kill(pid, SIGKILL)
    }

    /// The last lines the engine wrote to stderr (a traceback, usually, when it crashed).
    func lastErrorLines() -> [String] {
        stderrTail.withLock { $0 }
    }

    /// Runs the program until it exits.
    func run() async -> EngineExit {
        defer { eventSink.finish() }
        _ = brokenPipesAreErrors
        guard let program = commandLine.first else { return .failedToStart(reason: "empty command line") }
        let executable: Executable = program.contains("/") ? .path(.init(program)) : .name(program)
        var options = PlatformOptions()
        // Own process group, so a kill reaches what the engine started (ffmpeg) too.
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(2))]
        var environmentUpdate: [Environment.Key: String?] = [:]
        for (key, value) in environment { environmentUpdate[Environment.Key(stringLiteral: key)] = value }
        do {
            let result = try await Subprocess.run(
                executable,
                arguments: Arguments(Array(commandLine.dropFirst())),
                environment: .inherit.updating(environmentUpdate),
                workingDirectory: workingDirectory.map { .init($0) },
                platformOptions: options,
                input: .inputWriter,
                output: .sequence,
                error: .sequence
            ) { execution in
                let pid = execution.processIdentifier.value
                let killedBeforeStart = control.withLock { control in
                    control.processID = pid
                    return control.isKilled
                }
                if killedBeforeStart { Self.killGroup(of: pid) }
                await pump(execution)
            }
            control.withLock { $0.processID = nil }
            switch result.terminationStatus {
            case .exited(let code): return .exited(code: code)
            case .signaled(let signal): return .signaled(signal: signal)
            }
        } catch {
            return .failedToStart(reason: "\(commandLine.joined(separator: " ")): \(error)")
        }
    }

    /// Moves bytes between the pipes and the streams until the engine closes its stdout and stderr.
    private func pump(_ execution: Execution<CustomWriteInput, SequenceOutput, SequenceOutput>) async {
        let writer = execution.standardInputWriter
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await line in self.commands {
                    // A dead engine's pipe refuses writes; its exit is reported by `run`, so drop them.
                    _ = try? await writer.write(line)
                }
                try? await writer.finish()
            }
            group.addTask {
                do {
                    for try await line in execution.standardOutput.strings(bufferingPolicy: .maxLineLength(1 << 20)) {
                        self.eventSink.yield(EngineEvent.parse(line))
                    }
                } catch {
                    self.logger.warning("engine stdout: \(error)")
                }
            }
            group.addTask {
                do {
                    for try await line in execution.standardError.strings(bufferingPolicy: .maxLineLength(1 << 20)) {
                        self.logger.info("engine: \(line)")
                        self.stderrTail.withLock { tail in
                            tail.append(line)
                            if tail.count > Self.stderrTailLines { tail.removeFirst(tail.count - Self.stderrTailLines) }
                        }
                    }
                } catch {
                    self.logger.warning("engine stderr: \(error)")
                }
            }
            // Both readers end at the engine's exit; then stop the writer.
            await group.next()
            await group.next()
            commandSink.finish()
        }
    }
}

/// A write to the stdin of an engine that has just died must fail with EPIPE (the supervisor then sees the exit),
/// not raise SIGPIPE, which would kill the whole service (or test process).
private let brokenPipesAreErrors: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
