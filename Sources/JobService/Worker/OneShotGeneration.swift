import Foundation
import Logging

/// One generation without the HTTP service: starts the engine under the same supervision (heartbeats, hang and
/// crash detection), runs one job, and stops the engine. Used by `infinitetalk generate`.
public struct OneShotGeneration: Sendable {
    public let engine: EngineConfiguration
    public let logger: Logger

    public init(engine: EngineConfiguration, logger: Logger) {
        self.engine = engine
        self.logger = logger
    }

    /// The generation failed; `failure.code` is the engine's or the supervisor's code.
    public struct Failed: Error, CustomStringConvertible {
        public let failure: JobFailure
        public var description: String { "\(failure.code): \(failure.message)" }
    }

    /// Runs one job.
    /// - Parameters:
    ///   - parameters: reads the job's parameters once the engine said what it takes (its `ParameterSchema`, as
    ///     for an upload); an error it throws stops the engine and is rethrown.
    ///   - segmentsDirectory: a folder (made if missing) where the engine also writes the live stream as clips
    ///     finish: `live.m3u8`, `init.mp4`, `clip-00001.m4s`, ... (`nil`: none).
    ///   - onProgress: called with each stage or progress report, and a one-line description.
    /// - Returns: the engine's `done` report; the video is at `outputPath`.
    public func run(
        imagePath: String, audioPath: String, audio2Path: String? = nil, outputPath: String,
        segmentsDirectory: String? = nil,
        parameters: @escaping @Sendable (EngineHello) throws -> JobParameters,
        onProgress: @escaping @Sendable (JobProgress, String) -> Void
    ) async throws -> EngineDone {
        let supervisor = EngineSupervisor(configuration: engine, logger: logger)
        let progress = LiveProgressStore()
        let jobID = UUID().uuidString.lowercased()
        return try await withThrowingTaskGroup(of: EngineDone?.self) { group in
            group.addTask {
                await supervisor.run()
                return nil
            }
            defer { group.cancelAll() }
            let outcome: Result<EngineDone, Failed>
            do {
                // Checked at `hello`, before the engine loads its models: a bad option fails at once.
                let hello: EngineHello
                if let said = await supervisor.waitForHello(timeout: engine.helloTimeout) {
                    hello = said
                } else {
                    hello = try await waitUntilReady(supervisor)
                }
                let request: EngineJobRequest
                do {
                    if let segmentsDirectory {
                        try FileManager.default.createDirectory(
                            atPath: segmentsDirectory, withIntermediateDirectories: true)
                    }
                    request = EngineJobRequest(
                        jobID: jobID, imagePath: absolute(imagePath), audioPath: absolute(audioPath),
                        audio2Path: audio2Path.map(absolute), outputPath: absolute(outputPath),
                        segmentsDirectory: segmentsDirectory.map(absolute), parameters: try parameters(hello))
                } catch {
                    await supervisor.stop()
                    for try await _ in group {}
                    throw error
                }
                _ = try await waitUntilReady(supervisor)
                guard let events = await supervisor.submit(request) else {
                    throw Failed(
                        failure: JobFailure(
                            code: "engine_unavailable", message: "The engine stopped before the job started"))
                }
                outcome = await follow(events, progress: progress, onProgress: onProgress)
            } catch let failed as Failed {
                outcome = .failure(failed)
            }
            await supervisor.stop()
            for try await _ in group {}
            return try outcome.get()
        }
    }

    /// Waits for `ready`; a first start that fails is an error here (nobody would see the retries).
    private func waitUntilReady(_ supervisor: EngineSupervisor) async throws -> EngineHello {
        for await state in await supervisor.states() {
            switch state {
            case .ready(let hello): return hello
            case .starting: continue
            case .unavailable(let reason):
                await supervisor.stop()
                throw Failed(failure: JobFailure(code: "engine_unavailable", message: reason))
            case .stopped:
                throw Failed(failure: JobFailure(code: "engine_unavailable", message: "The engine stopped"))
            }
        }
        throw CancellationError() // the states end early only when this task is cancelled
    }

    private func follow(
        _ events: AsyncStream<EngineJobEvent>, progress: LiveProgressStore,
        onProgress: @Sendable (JobProgress, String) -> Void
    ) async -> Result<EngineDone, Failed> {
        var outcome = Result<EngineDone, Failed>.failure(
            Failed(failure: JobFailure(code: "internal", message: "The engine ended the job without a result")))
        for await event in events {
            switch event {
            case .stage(let stage):
                onProgress(progress.record(stage), stage.message)
            case .progress(let report):
                let current = progress.record(report)
                onProgress(current, current.summary)
            case .segment:
                break // the engine writes the playlist itself (`live.m3u8`)
            case .done(let done):
                outcome = .success(done)
            case .failed(let error):
                outcome = .failure(Failed(failure: JobFailure(code: error.code, message: error.message)))
            case .lost(let failure):
                outcome = .failure(Failed(failure: failure))
            }
        }
        return outcome
    }

    private func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}
