import Foundation

/// Sample media for tests: the shared fixtures and files generated on the spot with ffmpeg (`-f lavfi`).
enum TestMedia {
    /// `<repo>/../shared/media`, found from this source file (never a hard-coded absolute path).
    static let sharedMedia: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // UploadsTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // repository
        .deletingLastPathComponent()
        .appendingPathComponent("shared/media")

    static var sharedPortraitPath: String { sharedMedia.appendingPathComponent("astronaut.png").path }
    static var sharedSpeechPath: String { sharedMedia.appendingPathComponent("speech-en.wav").path }

    /// A sine tone of `seconds` encoded by ffmpeg with `codecArguments` into `<directory>/<name>`.
    static func makeTone(seconds: Double, name: String, codecArguments: [String], in directory: TemporaryDirectory)
        throws -> String {
        let path = directory.path + "/" + name
        try ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=\(seconds)"]
            + codecArguments + [path])
        return path
    }

    /// One solid-colour frame of `width` x `height` encoded by ffmpeg into `<directory>/<name>`.
    static func makePicture(width: Int, height: Int, name: String, extraArguments: [String] = [],
                            in directory: TemporaryDirectory) throws -> String {
        let path = directory.path + "/" + name
        try ffmpeg(["-f", "lavfi", "-i", "color=c=orange:s=\(width)x\(height)", "-frames:v", "1"]
            + extraArguments + [path])
        return path
    }

    /// Runs `ffmpeg -v error -y <arguments>` and fails on a non-zero exit.
    static func ffmpeg(_ arguments: [String]) throws {
        try run("ffmpeg", ["-nostdin", "-v", "error", "-y"] + arguments)
    }

    /// Width and height of the first video stream, as ffprobe reads them (an independent opinion).
    static func ffprobeDimensions(of path: String) throws -> (width: Int, height: Int) {
        let output = try run("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries",
                                         "stream=width,height", "-of", "csv=p=0:s=x", path])
        let numbers = output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "x").compactMap { Int($0) }
        guard numbers.count == 2 else { throw MediaToolError(message: "ffprobe said \(output)") }
        return (numbers[0], numbers[1])
    }

    /// Duration of a media file as ffprobe reads it.
    static func ffprobeDuration(of path: String) throws -> Double {
        let output = try run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path])
        guard let seconds = Double(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw MediaToolError(message: "ffprobe said \(output)")
        }
        return seconds
    }

    @discardableResult
    private static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw MediaToolError(message: "\(tool) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    struct MediaToolError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}

/// Reads a whole (small) file.
func fileBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}
