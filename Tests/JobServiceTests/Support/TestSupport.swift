import Foundation
import Hummingbird
import Logging

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

    /// An engine command that never says anything, not even `hello` (submissions cannot be checked: 503).
    static let silentEngineCommand = ["sleep", "600"]

    /// An engine that says `hello` (so options can be checked) but never `ready` (jobs stay queued).
    static let neverReadyEngineCommand = fakeEngineCommand(["--never-ready"])

    /// A new empty temporary folder.
    static func makeTemporaryDirectory(_ label: String = "itk") -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent(
            "\(label)-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A configuration for in-process tests: in-memory database, temporary data folder, fast engine timings.
    static func configuration(engine command: [String], _ adjust: (inout ServiceConfiguration) -> Void = { _ in })
        -> ServiceConfiguration
    {
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
        adjust(&configuration)
        return configuration
    }

    static let quietLogger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel =
            ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        return logger
    }()

    /// Polls `condition` until it holds or `timeout` passes.
    static func waitUntil(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(25))
        }
        return try await condition()
    }

    /// Polls until the job is in one of `statuses`; returns it.
    static func waitForJob(
        _ id: String, in repository: JobRepository, statuses: Set<JobStatus>,
        timeout: Duration = .seconds(30)
    ) async throws -> Job? {
        var last: Job?
        _ = try await waitUntil(timeout: timeout) {
            last = try await repository.job(id: id)
            return last.map { statuses.contains($0.status) } ?? false
        }
        return last
    }

    // MARK: - Jobs without uploads

    /// Stores a queued job whose input files exist (the fake engine never reads them).
    static func enqueueJob(
        _ repository: JobRepository, files: JobFiles, audioSeconds: Double = 1,
        maxQueueSize: Int = 20
    ) async throws -> Job {
        let id = UUID().uuidString.lowercased()
        let folder = files.uploadFolder(for: id)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["image", "audio"] {
            FileManager.default.createFile(
                atPath: (folder as NSString).appendingPathComponent(name), contents: Data([1]))
        }
        let job = Job(
            id: id, parameters: JobParameters(seed: 7), imagePath: folder + "/image", audioPath: folder + "/audio",
            audioSeconds: audioSeconds, resultPath: files.resultPath(for: id))
        return try await repository.enqueue(job, maxQueueSize: maxQueueSize).job
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
