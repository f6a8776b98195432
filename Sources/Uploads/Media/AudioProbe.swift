import Foundation
import Subprocess

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

/// Measures how long an audio file really is by decoding it with `ffmpeg`, run as a child process with a time
/// limit.
///
/// Headers lie: a chained Ogg (a long stream followed by a short one), a FLAC whose STREAMINFO or an MP3 whose
/// Xing tag claims 2 s are reported as 2 s by ffprobe, yet decode (in the engine too) to their full length. So
/// the first audio stream is decoded to 1 kHz mono 8-bit samples, one byte per millisecond, and the bytes are
/// counted. Decoding stops a second past `maxSeconds` (`-t`), so a file far over the limit costs no more than one
/// at it. A file ffmpeg cannot decode, or one with no audio stream, is `invalid_audio`.
struct AudioProbe: Sendable {
    /// `ffmpeg` as a path (contains `/`) or a name looked up in `PATH`.
    let executable: String
    /// Longest a probe may run before it is killed and the audio is rejected.
    let timeout: Duration

    /// Decoded samples per second: one byte per millisecond.
    private static let samplesPerSecond = 1000

    /// The decoded duration in seconds of the first audio stream, measured up to a second past `maxSeconds`
    /// (a longer file reads as `maxSeconds + 1`).
    func decodedSeconds(of path: String, maxSeconds: Double) async throws -> Double {
        let stopAfter = maxSeconds + 1
        let samples = try await runWithTimeout(
            arguments: [
                "-nostdin", "-v", "error",
                // `file:` so that a path is never read as another protocol or an option.
                "-i", "file:" + path,
                "-map", "0:a:0", "-t", String(stopAfter),
                "-ac", "1", "-ar", String(Self.samplesPerSecond), "-f", "u8", "pipe:1",
            ],
            outputLimit: Int(stopAfter * Double(Self.samplesPerSecond)) * 2 + 65536)
        guard samples > 0 else { throw UploadError.invalidAudio("The audio stream has no samples.") }
        return Double(samples) / Double(Self.samplesPerSecond)
    }

    /// Runs ffmpeg and counts its output bytes; throws `invalid_audio` when it fails or outlives `timeout` (it is
    /// then terminated).
    private func runWithTimeout(arguments: [String], outputLimit: Int) async throws -> Int {
        let executable: Executable =
            self.executable.contains("/")
            ? .path(FilePath(self.executable)) : .name(self.executable)
        var options = PlatformOptions()
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .milliseconds(500))]
        let platformOptions = options
        let timeout = self.timeout

        return try await withThrowingTaskGroup(of: Int?.self) { group in
            group.addTask {
                let result: ExecutionResult<Void, BytesOutput, DiscardedOutput>
                do {
                    result = try await Subprocess.run(
                        executable, arguments: Arguments(arguments),
                        platformOptions: platformOptions,
                        output: .bytes(limit: outputLimit), error: .discarded)
                } catch let error as SubprocessError {
                    throw UploadError.probeUnavailable("The audio decoder could not run: \(error)")
                }
                guard result.terminationStatus.isSuccess else {
                    throw UploadError.invalidAudio("The audio file could not be decoded.")
                }
                return result.standardOutput.count
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let byteCount = first else {
                throw UploadError.invalidAudio("Decoding the audio took longer than \(timeout).")
            }
            return byteCount
        }
    }
}
