import Foundation
import Hummingbird
import Logging
import Testing

@testable import JobService

/// Paths, configurations, media and waiting helpers shared by the tests.
enum TestSupport {
    /// The repository root (this file is `Tests/JobServiceTests/Support/TestSupport.swift`).
    static let repositoryRoot: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .path

    /// Shared test media (`<repo>/../shared/media`), when present.
    static let sharedMedia = (repositoryRoot as NSString).appendingPathComponent("../shared/media")

    static let fakeEngine = (repositoryRoot as NSString).appendingPathComponent(
        "Tests/JobServiceTests/Fixtures/fake_engine.py")

    /// The fake engine's command line with `flags`.
    static func fakeEngineCommand(_ flags: [String] = []) -> [String] {
        ["python3", fakeEngine] + flags
    }

    /// What the fake engine with `flags` says in `hello` (it prints it at once, and exits when its input ends).
    static func helloOfFakeEngine(_ flags: [String] = []) throws -> EngineHello {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = fakeEngineCommand(flags + ["--never-ready"])
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        for line in lines.split(separator: "\n") {
            if case .hello(let hello) = EngineEvent.parse(String(line)) { return hello }
        }
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "no hello in: \(lines)"])
    }

    /// The fake engine's `hello` with no flags: the parameters a preview-like engine declares.
    static let fakeEngineHello: EngineHello? = try? helloOfFakeEngine()

    /// A new empty temporary folder.
    static func makeTemporaryDirectory(_ label: String = "itk") -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent(
            "\(label)-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A configuration for in-process tests: in-memory database, temporary data folder, fast engine timings; then
    /// `settings`, keyed by flag as on the command line (`["max-queue-size": "1"]`).
    static func configuration(engine command: [String], settings: [String: String] = [:]) -> ServiceConfiguration {
        var configuration = ServiceConfiguration()
        configuration.port = 0
        configuration.inMemoryDatabase = true
        configuration.dataDirectory = makeTemporaryDirectory("itk-data")
        configuration.engine.command = command
        configuration.engine.heartbeatInterval = .milliseconds(200)
        // Generous: on a loaded 2-core CI machine a Python engine can stall for seconds. Tests of hang detection
        // set short timeouts themselves.
        configuration.engine.heartbeatTimeout = .seconds(20)
        configuration.engine.cancelTimeout = .seconds(10)
        configuration.engine.restartBackoff = .milliseconds(50)
        configuration.engine.maxRestartBackoff = .milliseconds(200)
        configuration.shutdownGracePeriod = .seconds(1)
        configuration.retention = nil
        // The live test client opens its connection at start and may first use it much later (after an engine
        // start): no head timeout for it. Tests of the timeout set a short one.
        configuration.connections.requestHeadTimeout = .seconds(3600)
        configuration.minFreeDiskBytes = 0 // the verdict must not depend on the machine's free disk
        for setting in ConfigurationSetting.all {
            guard let value = settings[setting.flag] else { continue }
            do {
                try configuration.apply(setting, value, source: setting.flag)
            } catch {
                Issue.record("test setting \(setting.flag)=\(value): \(error)")
            }
        }
        return configuration
    }

    /// The `Origin` the test framework's WebSocket client (WSClient) sends to `ws://localhost:<port>`: no port, so
    /// not the server's own page; tests using it allow it (`--allowed-origins`).
    static let webSocketClientOrigin = "ws://localhost"

    static let quietLogger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel =
            ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }()

    // MARK: - Waiting, on the condition itself

    /// A wait outlasted its guard.
    struct TimedOut: Error, CustomStringConvertible {
        let timeout: Duration
        var description: String { "gave up waiting after \(timeout)" }
    }

    /// Runs `body`; if it has not finished after `timeout`, cancels it and throws `TimedOut`. The timeout only
    /// guards against a hang (keep it generous): nothing here measures speed.
    static func withTimeout<T: Sendable>(
        _ timeout: Duration = .seconds(90), _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw TimedOut(timeout: timeout) }
            return value
        }
    }

    /// Waits until `condition` holds for the engine's state (checked on the current state, then on every change).
    @discardableResult
    static func waitForEngine(
        _ engine: any Engine, timeout: Duration = .seconds(90),
        until condition: @escaping @Sendable (EngineState) async -> Bool
    ) async throws -> EngineState {
        try await withTimeout(timeout) {
            for await state in await engine.states() where await condition(state) { return state }
            throw CancellationError() // the engine stopped for good first
        }
    }

    /// Waits until the engine said hello and is ready.
    static func waitUntilReady(_ engine: any Engine) async throws {
        try await waitForEngine(engine) { $0.hello != nil }
    }

    // MARK: - Jobs without uploads

    /// A job that is not stored yet; its files do not exist.
    static func makeJob(audioSeconds: Double = 2) -> Job {
        let id = UUID().uuidString.lowercased()
        return Job(
            id: id, parameters: JobParameters(seed: 1), imagePath: "/u/\(id)/image", audioPath: "/u/\(id)/audio",
            audioSeconds: audioSeconds, resultPath: "/r/\(id).mp4")
    }

    /// Stores `count` new jobs (`makeJob`) straight into `repository`.
    static func enqueue(
        _ count: Int, into repository: any JobRepository, audioSeconds: Double = 2, maxQueueSize: Int = 20
    ) async throws -> [Job] {
        var jobs: [Job] = []
        for _ in 0..<count {
            jobs.append(
                try await repository.enqueue(makeJob(audioSeconds: audioSeconds), maxQueueSize: maxQueueSize).job)
        }
        return jobs
    }

    /// Submits a queued job whose input files exist (the fake engine never reads them).
    static func enqueueJob(_ queue: JobQueue, files: JobFiles, audioSeconds: Double = 1) async throws -> Job {
        let id = UUID().uuidString.lowercased()
        let folder = files.uploadFolder(for: id)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["image", "audio"] {
            _ = FileManager.default.createFile(
                atPath: (folder as NSString).appendingPathComponent(name), contents: Data([1]))
        }
        let job = Job(
            id: id, parameters: JobParameters(seed: 7), imagePath: folder + "/image", audioPath: folder + "/audio",
            audioSeconds: audioSeconds, resultPath: files.resultPath(for: id))
        return try await queue.submit(job).job
    }

    // MARK: - Media

    private static let mediaFolder = makeTemporaryDirectory("itk-media")

    /// Runs a program; returns its exit status.
    @discardableResult
    static func runProgram(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// A PNG of `width` x `height` (made once by ffmpeg).
    static func png(width: Int = 96, height: Int = 96) throws -> String {
        try makeOnce("image-\(width)x\(height).png") { path in
            [
                "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=\(width)x\(height)", "-frames:v",
                "1", path,
            ]
        }
    }

    /// A mono 16 kHz WAV of `seconds` (a tone, made once by ffmpeg).
    static func wav(seconds: Double = 1) throws -> String {
        try makeOnce("audio-\(seconds).wav") { path in
            [
                "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=220:duration=\(seconds)",
                "-ar", "16000", "-ac", "1", path,
            ]
        }
    }

    /// Runs `command` to make `name` once; tests running in parallel never see a half-written file (it is made
    /// under a private name, then renamed).
    private static func makeOnce(_ name: String, command: (String) -> [String]) throws -> String {
        let path = (mediaFolder as NSString).appendingPathComponent(name)
        if !FileManager.default.fileExists(atPath: path) {
            let temporary = (mediaFolder as NSString).appendingPathComponent("\(UUID().uuidString)-\(name)")
            try runProgram(command(temporary))
            _ = rename(temporary, path)
        }
        return path
    }
}

/// A `multipart/form-data` body built in memory for tests.
struct MultipartForm {
    let boundary = "test-boundary-\(UUID().uuidString.prefix(8))"
    private var bytes: [UInt8] = []

    mutating func addField(_ name: String, _ value: String) {
        append("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
    }

    mutating func addFile(_ name: String, filename: String, contentType: String, data: Data) {
        append("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\n")
        append("Content-Type: \(contentType)\r\n\r\n")
        bytes += data
        append("\r\n")
    }

    mutating func addFile(_ name: String, path: String, contentType: String = "application/octet-stream") throws {
        addFile(
            name, filename: (path as NSString).lastPathComponent, contentType: contentType,
            data: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    var body: ByteBuffer {
        ByteBuffer(bytes: bytes + Array("--\(boundary)--\r\n".utf8))
    }

    var headers: HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "multipart/form-data; boundary=\(boundary)"
        return headers
    }

    private mutating func append(_ text: String) { bytes += Array(text.utf8) }

    /// A valid request: a small PNG and a WAV, plus `fields`.
    static func valid(audioSeconds: Double = 1, fields: [String: String] = [:]) throws -> MultipartForm {
        var form = MultipartForm()
        try form.addFile("image", path: try TestSupport.png(), contentType: "image/png")
        try form.addFile("audio", path: try TestSupport.wav(seconds: audioSeconds), contentType: "audio/wav")
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) { form.addField(name, value) }
        return form
    }
}
