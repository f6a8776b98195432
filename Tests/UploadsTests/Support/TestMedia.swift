import Foundation

/// Sample media for tests: the shared fixtures and files generated on the spot with ffmpeg (`-f lavfi`).
enum TestMedia {
    /// `<repo>/../shared/media`, found from this source file (never a hard-coded absolute path).
    static let sharedMedia: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent() // Support
        .deletingLastPathComponent() // UploadsTests
        .deletingLastPathComponent() // Tests
        .deletingLastPathComponent() // repository
        .deletingLastPathComponent()
        .appendingPathComponent("shared/media")

    static var sharedPortraitPath: String { sharedMedia.appendingPathComponent("astronaut.png").path }
    static var sharedSpeechPath: String { sharedMedia.appendingPathComponent("speech-en.wav").path }

    /// A sine tone of `seconds` encoded by ffmpeg with `codecArguments` into `<directory>/<name>`.
    static func makeTone(seconds: Double, name: String, codecArguments: [String], in directory: TemporaryDirectory)
        async throws -> String
    {
        let path = directory.path + "/" + name
        try await ffmpeg(
            ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=\(seconds)"]
                + codecArguments + [path])
        return path
    }

    /// One solid-colour frame of `width` x `height` encoded by ffmpeg into `<directory>/<name>`.
    static func makePicture(
        width: Int, height: Int, name: String, extraArguments: [String] = [],
        in directory: TemporaryDirectory
    ) async throws -> String {
        let path = directory.path + "/" + name
        try await ffmpeg(
            ["-f", "lavfi", "-i", "color=c=orange:s=\(width)x\(height)", "-frames:v", "1"]
                + extraArguments + [path])
        return path
    }

    /// Runs `ffmpeg -v error -y <arguments>` and fails on a non-zero exit.
    static func ffmpeg(_ arguments: [String]) async throws {
        try await run("ffmpeg", ["-nostdin", "-v", "error", "-y"] + arguments)
    }

    /// Width and height of the first video stream, as ffprobe reads them (an independent opinion).
    static func ffprobeDimensions(of path: String) async throws -> (width: Int, height: Int) {
        let output = try await run(
            "ffprobe",
            [
                "-v", "error", "-select_streams", "v:0", "-show_entries",
                "stream=width,height", "-of", "csv=p=0:s=x", path,
            ])
        let numbers = output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "x").compactMap {
            Int($0)
        }
        guard numbers.count == 2 else { throw MediaToolError(message: "ffprobe said \(output)") }
        return (numbers[0], numbers[1])
    }

    /// Duration of a media file as ffprobe reads it.
    static func ffprobeDuration(of path: String) async throws -> Double {
        let output = try await run(
            "ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path])
        guard let seconds = Double(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw MediaToolError(message: "ffprobe said \(output)")
        }
        return seconds
    }

    /// Runs a tool to completion without blocking a thread of Swift's cooperative pool (a blocked pool
    /// would stall every other test's timers and child processes); stdout goes through a temporary file.
    @discardableResult
    private static func run(_ tool: String, _ arguments: [String]) async throws -> String {
        await toolSlots.acquire()
        defer { Task { await toolSlots.release() } }
        let outputPath = NSTemporaryDirectory() + "uploads-tests-output-" + UUID().uuidString
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        defer { try? output.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        process.standardOutput = output
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                continuation.resume(throwing: error)
            }
        }
        guard status == 0 else {
            throw MediaToolError(message: "\(tool) \(arguments.joined(separator: " ")) exited \(status)")
        }
        return try String(contentsOfFile: outputPath, encoding: .utf8)
    }

    /// Parameterised tests run in parallel; this keeps ffmpeg runs to one per core on a shared 2-core machine.
    private static let toolSlots = AsyncSemaphore(slots: ProcessInfo.processInfo.activeProcessorCount)

    struct MediaToolError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}

/// Reads a whole (small) file.
func fileBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// Lets at most `slots` callers through at once; the others wait in order.
actor AsyncSemaphore {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(slots: Int) { free = max(1, slots) }

    func acquire() async {
        if free > 0 {
            free -= 1
        } else {
            await withCheckedContinuation { waiting.append($0) }
        }
    }

    func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume() // the slot passes straight to the next waiter
        }
    }
}
