import Foundation
import Subprocess

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Reads an audio file's duration with `ffprobe` (FFmpeg), run as a child process with a time limit.
///
/// ffprobe only demuxes (reads headers and packet timing), so it is cheap even for a 50 MB file. A file it
/// cannot open, or one with no audio stream, is `invalid_audio`.
struct AudioProbe: Sendable {
    /// `ffprobe` as a path (contains `/`) or a name looked up in `PATH`.
    let executable: String
    /// Longest a probe may run before it is killed and the audio is rejected.
    let timeout: Duration

    /// The duration in seconds of the first audio stream's container.
    func durationSeconds(of path: String) async throws -> Double {
        let output = try await runWithTimeout(arguments: [
            "-v", "error",
            "-select_streams", "a",
            "-show_entries", "format=duration:stream=codec_type,duration",
            "-of", "json",
            // `file:` so that a path is never read as another protocol or an option.
            "file:" + path,
        ])
        guard let report = try? JSONDecoder().decode(Report.self, from: Data(output.utf8)) else {
            throw UploadError.invalidAudio("The audio file could not be read.")
        }
        guard let stream = report.streams?.first(where: { $0.codecType == "audio" }) else {
            throw UploadError.invalidAudio("The file has no audio stream.")
        }
        let duration = report.format?.duration.flatMap(Double.init) ?? stream.duration.flatMap(Double.init)
        guard let duration, duration.isFinite, duration >= 0 else {
            throw UploadError.invalidAudio("The audio file has no readable duration.")
        }
        return duration
    }

    /// Runs ffprobe; throws `invalid_audio` when it fails or outlives `timeout` (it is then terminated).
    private func runWithTimeout(arguments: [String]) async throws -> String {
        let executable: Executable =
            self.executable.contains("/")
            ? .path(FilePath(self.executable)) : .name(self.executable)
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .milliseconds(500))]
        let platformOptions = options
        let timeout = self.timeout

        return try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                let result: ExecutionResult<Void, StringOutput<UTF8>, DiscardedOutput>
                do {
                    result = try await Subprocess.run(
                        executable, arguments: Arguments(arguments),
                        platformOptions: platformOptions,
                        output: .string(limit: 1024 * 1024), error: .discarded)
                } catch let error as SubprocessError {
                    throw UploadError.probeUnavailable("The audio probe could not run: \(error)")
                }
                guard result.terminationStatus.isSuccess else {
                    throw UploadError.invalidAudio("The audio file could not be decoded.")
                }
                return result.standardOutput
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let output = first else {
                throw UploadError.invalidAudio("Probing the audio took longer than \(timeout).")
            }
            return output
        }
    }

    /// The parts of `ffprobe -of json` output that we read.
    private struct Report: Decodable {
        struct Stream: Decodable {
            let codecType: String?
            let duration: String?
            enum CodingKeys: String, CodingKey {
                case codecType = "codec_type"
                case duration
            }
        }
        struct Format: Decodable { let duration: String? }
        let streams: [Stream]?
        let format: Format?
    }
}
