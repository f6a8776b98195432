import Foundation
import HummingbirdTesting
import HummingbirdWSTesting
import Synchronization
import Testing
import WSClient

@testable import JobService

#if canImport(Glibc)
    import Glibc
#endif

/// The real preview engine (`.venv/bin/python -m infinitetalk_engine --engine preview`) behind the real service.
/// Skipped only when the engine package cannot be imported.
enum PreviewEngine {
    static let python = (TestSupport.repositoryRoot as NSString).appendingPathComponent(".venv/bin/python")

    static let isAvailable: Bool = {
        guard FileManager.default.isExecutableFile(atPath: python) else { return false }
        return (try? TestSupport.runProgram([python, "-c", "import infinitetalk_engine"])) == 0
    }()

    /// A portrait: the shared astronaut, or a generated gradient when the shared media is absent.
    static func portrait() throws -> String {
        let shared = (TestSupport.sharedMedia as NSString).appendingPathComponent("astronaut.png")
        return FileManager.default.fileExists(atPath: shared) ? shared : try TestSupport.png(width: 256, height: 256)
    }

    /// `seconds` of speech: the shared recording cut or looped, or a tone.
    static func speech(seconds: Double) throws -> String {
        let shared = (TestSupport.sharedMedia as NSString).appendingPathComponent("speech-en.wav")
        guard FileManager.default.fileExists(atPath: shared) else { return try TestSupport.wav(seconds: seconds) }
        let path = TestSupport.makeTemporaryDirectory("itk-speech") + "/speech-\(seconds).wav"
        try TestSupport.runProgram([
            "ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", shared,
            "-t", "\(seconds)", path,
        ])
        return path
    }
}

/// What ffprobe says about a file.
struct MediaProbe {
    let streams: [JSONValue]

    init(path: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,r_frame_rate,duration",
            "-of", "json", path,
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        streams = try JSONValue.parse(data)["streams"]?.arrayValue ?? []
    }

    func stream(_ type: String) -> JSONValue? { streams.first { $0["codec_type"] == .string(type) } }
    func duration(_ type: String) -> Double? { stream(type)?["duration"]?.stringValue.flatMap(Double.init) }
}

/// What ffprobe, as an HLS player, reads from a playlist URL: the streams' codecs and, once the playlist is ended,
/// its duration.
struct PlaylistProbe {
    let codecs: Set<String>
    let duration: Double?

    init(url: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "json", url,
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let json = try JSONValue.parse(output.fileHandleForReading.readDataToEndOfFile())
        process.waitUntilExit()
        codecs = Set((json["streams"]?.arrayValue ?? []).compactMap { $0["codec_name"]?.stringValue })
        duration = json["format"]?["duration"]?.stringValue.flatMap(Double.init)
    }
}

@Suite(
    .serialized, .enabled(if: PreviewEngine.isAvailable, "the engine package (engine/infinitetalk_engine) is missing"))
struct EndToEndTests {
    final class Inbox: Sendable {
        private let messages = Mutex<[JSONValue]>([])
        func add(_ value: JSONValue) { messages.withLock { $0.append(value) } }
        var all: [JSONValue] { messages.withLock { $0 } }
    }

    @Test func aSubmittedJobStreamsItsProgressAndYieldsAPlayableVideo() async throws {
        // Given the service with the real preview engine
        var configuration = TestSupport.configuration(engine: [])
        configuration.engine.command = nil
        configuration.engine.heartbeatTimeout = .seconds(30)
        configuration.engine.startupTimeout = .seconds(120)
        configuration.locateRepository(root: TestSupport.repositoryRoot)
        configuration.allowedOrigins = [TestSupport.webSocketClientOrigin]
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        let audio = try PreviewEngine.speech(seconds: 2)
        var form = MultipartForm()
        try form.addFile("image", path: try PreviewEngine.portrait(), contentType: "image/png")
        try form.addFile("audio", path: audio, contentType: "audio/wav")
        form.addField("seed", "7")
        let submitted = form
        let inbox = Inbox()
        let video = TestSupport.makeTemporaryDirectory("itk-e2e") + "/result.mp4"

        try await service.application.test(.live) { client in
            // When a client watches /ws and submits a job
            try await client.ws("/ws") { inbound, outbound, _ in
                var requestID: String?
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message, let json = try? JSONValue.parse(text) else { continue }
                    inbox.add(json)
                    if requestID == nil {
                        let response = try await client.execute(
                            uri: "/api/generate", method: .post,
                            headers: submitted.headers, body: submitted.body)
                        #expect(response.status == .ok, "\(response.json)")
                        requestID = response.json["request_id"]?.stringValue
                        if requestID == nil { break }
                    }
                    if json["type"] == .string("status_update"), json["request_id"]?.stringValue == requestID,
                        let status = json["status"]?.stringValue, ["completed", "failed", "cancelled"].contains(status)
                    {
                        break
                    }
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
            // Then it completes and the video downloads
            let final = try #require(inbox.all.last { $0["type"] == .string("status_update") })
            #expect(final["status"] == .string("completed"), "\(final)")
            let id = try #require(final["request_id"]?.stringValue)
            let download = try await client.execute(uri: "/api/result/\(id)", method: .get)
            #expect(download.status == .ok)
            try Data(download.body.readableBytesView).write(to: URL(fileURLWithPath: video))
            #expect(final["result"]?["bytes"]?.intValue == download.body.readableBytes)
        }

        // The events came in order: queued, processing, progress through the stages, completed
        let events = inbox.all.filter { $0["request_id"] != nil }
        var statuses: [String] = []
        for event in events where event["type"] == .string("status_update") {
            if let status = event["status"]?.stringValue, statuses.last != status { statuses.append(status) }
        }
        #expect(statuses == ["queued", "processing", "completed"])
        let progress = events.filter { $0["type"] == .string("progress_update") }
        #expect(!progress.isEmpty)
        let fractions = progress.compactMap { $0["progress"]?.doubleValue }
        #expect(fractions == fractions.sorted())
        let order = [
            "decoding_audio", "audio_features", "encoding_image", "encoding_text", "generating", "encoding_video",
        ]
        let stages = progress.compactMap { $0["stage"]?.stringValue }.compactMap { order.firstIndex(of: $0) }
        #expect(stages == stages.sorted(), "stages follow the documented order")
        for event in inbox.all {
            #expect(OpenAPISpec.problems(ofServerMessage: event.description).isEmpty, "\(event)")
        }

        // And the file is H.264 + AAC at 25 fps, as long as the audio to within one frame
        let probe = try MediaProbe(path: video)
        #expect(probe.stream("video")?["codec_name"] == .string("h264"))
        #expect(probe.stream("audio")?["codec_name"] == .string("aac"))
        #expect(probe.stream("video")?["r_frame_rate"] == .string("25/1"))
        let audioSeconds = try #require(MediaProbe(path: audio).duration("audio"))
        let videoSeconds = try #require(probe.duration("video"))
        #expect(
            abs(videoSeconds - audioSeconds) <= 1.0 / 25 + 0.001, "video \(videoSeconds) s, audio \(audioSeconds) s")
    }

    // MARK: - The binary, killed and restarted

    @Test(.enabled(if: ServerProcess.binaryExists, "build the binary first: swift build --product infinitetalk"))
    func killingTheServerMidQueueLosesNothing() async throws {
        let dataDirectory = TestSupport.makeTemporaryDirectory("itk-restart")
        let arguments = ["--data-dir", dataDirectory, "--max-concurrent", "1"]
        let image = try PreviewEngine.portrait()
        // Long enough to be caught running: the preview renders about six times faster than real time.
        let audio = try PreviewEngine.speech(seconds: 30)

        // Given a server with three jobs, the first running
        let first = try await ServerProcess(arguments: arguments)
        #expect(await first.waitUntilEngineReady())
        var ids: [String] = []
        for _ in 0..<3 {
            let response = try Curl.request(
                first.baseURL + "/api/generate", method: "POST",
                form: [("image", "@" + image), ("audio", "@" + audio)])
            #expect(response.status == 200, "\(response.json)")
            ids.append(try #require(response.json["request_id"]?.stringValue))
        }
        // (Uploads are slow in debug builds, so the first job may be done already: the second one runs then, or
        // is next; with one slot, the last job cannot be done before it starts, so it is caught running.)
        var interrupted: String?
        for id in ids where interrupted == nil {
            if try await first.waitForStatus(id, ["processing", "completed"]),
                try Curl.request(first.baseURL + "/api/status/\(id)").json["status"] == .string("processing")
            {
                interrupted = id
            }
        }
        let engines = first.childProcessIDs()
        #expect(!engines.isEmpty)

        // When it is killed with -9
        first.killHard()
        // Then its engine goes away too (its stdin closed)
        #expect(try await ServerProcess.waitForExit(of: engines, timeout: .seconds(15)))

        // And after a restart on the same data every job completes; the interrupted one was started twice
        let second = try await ServerProcess(arguments: arguments)
        defer { second.terminate() }
        for id in ids {
            #expect(try await second.waitForStatus(id, ["completed"]), "\(second.log.suffix(3000))")
        }
        let restarted = try #require(interrupted)
        let status = try Curl.request(second.baseURL + "/api/status/\(restarted)").json
        #expect(status["attempts"] == .integer(2))
        // The interrupted job's live stream is the second attempt's, whole: every clip, once, and ended
        let playlist = String(
            decoding: try Curl.request(second.baseURL + "/api/result/\(restarted)/live.m3u8").body, as: UTF8.self)
        let listed = playlist.split(separator: "\n").filter { $0.hasPrefix("live/clip-") }
        #expect(listed.count == status["segments_ready"]?.intValue && listed.count == Set(listed).count)
        #expect(playlist.hasSuffix("#EXT-X-ENDLIST\n"))
        let total = playlist.split(separator: "\n").filter { $0.hasPrefix("#EXTINF:") }
            .compactMap { Double($0.dropFirst("#EXTINF:".count).dropLast()) }.reduce(0, +)
        let video = try #require(status["result"]?["duration_seconds"]?.doubleValue)
        #expect(abs(total - video) < 0.2, "the clips add up to the video")
        #expect(try Curl.request(second.baseURL + "/api/requests").json["total"] == .integer(3))
        for id in ids {
            let download = try Curl.request(second.baseURL + "/api/result/\(id)")
            #expect(download.status == 200)
            #expect(download.body.count > 1000)
        }
    }

    // MARK: - The live stream

    @Test(.enabled(if: ServerProcess.binaryExists, "build the binary first: swift build --product infinitetalk"))
    func aPlayerReadsTheLiveStreamFromTheFirstClipAndAfterTheEnd() async throws {
        let server = try await ServerProcess(arguments: ["--data-dir", TestSupport.makeTemporaryDirectory("itk-live")])
        defer { server.terminate() }
        #expect(await server.waitUntilEngineReady())
        // Given a job of five clips (the preview makes 4 s per clip)
        let response = try Curl.request(
            server.baseURL + "/api/generate", method: "POST",
            form: [
                ("image", "@" + (try PreviewEngine.portrait())),
                ("audio", "@" + (try PreviewEngine.speech(seconds: 18))),
            ])
        let id = try #require(response.json["request_id"]?.stringValue, "\(response.json)")
        let playlist = server.baseURL + "/api/result/\(id)/live.m3u8"

        // When its first clip is ready, ffprobe reads the stream (whether the job still runs by then or not: a
        // player then waits for the next clips, as HLS EVENT playlists say)
        #expect(try await server.waitForJob(id) { ($0["segments_ready"]?.intValue ?? 0) >= 1 })
        #expect(try PlaylistProbe(url: playlist).codecs == ["h264", "aac"])

        // Then once the job completed, the ended playlist holds the whole video
        #expect(try await server.waitForStatus(id, ["completed"]), "\(server.log.suffix(3000))")
        let status = try Curl.request(server.baseURL + "/api/status/\(id)").json
        #expect(status["segments_ready"] == .integer(5))
        let text = String(decoding: try Curl.request(playlist).body, as: UTF8.self)
        #expect(text.hasSuffix("live/clip-00005.m4s\n#EXT-X-ENDLIST\n"), "\(text)")
        let ended = try PlaylistProbe(url: playlist)
        #expect(ended.codecs == ["h264", "aac"])
        let video = try #require(status["result"]?["duration_seconds"]?.doubleValue)
        let streamed = try #require(ended.duration)
        #expect(abs(streamed - video) < 0.3, "stream \(streamed) s, video \(video) s")
    }

    @Test(.enabled(if: ServerProcess.binaryExists, "build the binary first: swift build --product infinitetalk"))
    func anEngineKilledMidJobFailsThatJobAndTheNextOneRuns() async throws {
        let dataDirectory = TestSupport.makeTemporaryDirectory("itk-crash")
        let server = try await ServerProcess(arguments: [
            "--data-dir", dataDirectory, "--max-concurrent", "1", "--restart-backoff", "100ms",
        ])
        defer { server.terminate() }
        #expect(await server.waitUntilEngineReady())
        let image = try PreviewEngine.portrait()
        let audio = try PreviewEngine.speech(seconds: 30)
        func submit() throws -> String {
            let response = try Curl.request(
                server.baseURL + "/api/generate", method: "POST",
                form: [("image", "@" + image), ("audio", "@" + audio)])
            return try #require(response.json["request_id"]?.stringValue)
        }
        var ids = [try submit()]
        #expect(try await server.waitForStatus(ids[0], ["processing"]))
        // When the engine dies in the middle of the first job (and another job is sent meanwhile)
        for engine in server.childProcessIDs() { kill(engine, SIGKILL) }
        ids.append(try submit())
        // Then that job fails with engine_crashed, and the restarted engine runs the next one
        #expect(try await server.waitForStatus(ids[0], ["failed"]))
        let failed = try Curl.request(server.baseURL + "/api/status/\(ids[0])").json
        #expect(failed["error"]?["code"] == .string("engine_crashed"))
        #expect(try await server.waitForStatus(ids[1], ["completed"]))
        let metrics = String(decoding: try Curl.request(server.baseURL + "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("infinitetalk_engine_restarts_total 1"))
    }
}

/// `infinitetalk generate`: one video on the command line, no HTTP.
@Suite(.enabled(if: ServerProcess.binaryExists, "build the binary first: swift build --product infinitetalk"))
struct GenerateCommandTests {
    /// Runs the binary; returns its exit status and what it printed.
    private func generate(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServerProcess.binaryPath)
        process.arguments = ["generate"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: TestSupport.repositoryRoot)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test func itRunsOneJobUnderTheSameSupervision() throws {
        let output = TestSupport.makeTemporaryDirectory("itk-gen") + "/out.mp4"
        let engine = TestSupport.fakeEngineCommand().joined(separator: " ")
        let result = try generate([
            "--image", try TestSupport.png(), "--audio", try TestSupport.wav(), "--output", output,
            "--seed", "3", "--engine-command", engine,
        ])
        #expect(result.status == 0, "\(result.output)")
        #expect(FileManager.default.fileExists(atPath: output))
        #expect(result.output.contains("25 frames"))
        #expect(result.output.contains("100%"), "a progress bar was drawn")
    }

    @Test func engineErrorsEndWithTheirCodeAndAFailureStatus() throws {
        let engine = (TestSupport.fakeEngineCommand(["--job-error", "no_face"])).joined(separator: " ")
        let result = try generate([
            "--image", try TestSupport.png(), "--audio", try TestSupport.wav(),
            "--output", TestSupport.makeTemporaryDirectory() + "/x.mp4", "--engine-command", engine,
        ])
        #expect(result.status != 0)
        #expect(result.output.contains("no_face"))
    }

    @Test func badInputsAreRefusedBeforeTheEngineStarts() throws {
        let result = try generate([
            "--image", try TestSupport.png(width: 16, height: 16), "--audio", try TestSupport.wav(),
            "--engine-command", "false",
        ])
        #expect(result.status != 0)
        #expect(result.output.contains("image_dimensions_too_small"))
        // Options are checked against the schema the engine declares in `hello`, before it loads anything: this
        // engine never gets ready, so only a check at hello can answer.
        let badSteps = try generate([
            "--image", try TestSupport.png(), "--audio", try TestSupport.wav(), "--steps", "0",
            "--engine-command", TestSupport.fakeEngineCommand(["--never-ready"]).joined(separator: " "),
        ])
        #expect(badSteps.status != 0)
        #expect(badSteps.output.contains("invalid_parameter"), "\(badSteps.output)")
    }

    @Test func aSecondSpeakerIsSentToTheEngine() throws {
        let records = TestSupport.makeTemporaryDirectory("itk-gen-jobs")
        let engine = TestSupport.fakeEngineCommand(["--two-speakers", "--record-jobs", records]).joined(separator: " ")
        let audio2 = try TestSupport.wav(seconds: 2)
        let result = try generate([
            "--image", try TestSupport.png(), "--audio", try TestSupport.wav(), "--audio2", audio2,
            "--speaker-boxes", "[[0,0,48,96],[48,0,96,96]]",
            "--output", TestSupport.makeTemporaryDirectory() + "/two.mp4", "--engine-command", engine,
        ])
        #expect(result.status == 0, "\(result.output)")
        let record = try #require(try FileManager.default.contentsOfDirectory(atPath: records).first)
        let sent = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: records + "/" + record)))
        #expect(sent["params"]?["audio2_path"] == .string(audio2))
        #expect(sent["params"]?["speaker_boxes"]?.arrayValue?.count == 2)
    }

    @Test func aLiveFolderIsPassedToTheEngine() throws {
        let records = TestSupport.makeTemporaryDirectory("itk-gen-jobs")
        let engine = TestSupport.fakeEngineCommand(["--record-jobs", records, "--segments", "2"]).joined(separator: " ")
        let live = TestSupport.makeTemporaryDirectory("itk-gen-live") + "/stream"
        let result = try generate([
            "--image", try TestSupport.png(), "--audio", try TestSupport.wav(), "--live-dir", live,
            "--output", TestSupport.makeTemporaryDirectory() + "/out.mp4", "--engine-command", engine,
        ])
        #expect(result.status == 0, "\(result.output)")
        // The folder was made and named to the engine, which wrote the stream into it
        let record = try #require(try FileManager.default.contentsOfDirectory(atPath: records).first)
        let sent = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: records + "/" + record)))
        #expect(sent["segments_dir"] == .string(live))
        #expect(FileManager.default.fileExists(atPath: live + "/clip-00002.m4s"))
    }

    @Test func speakerBoxesWithoutASecondSpeakerAreRefused() throws {
        let result = try generate([
            "--image", try TestSupport.png(), "--audio", try TestSupport.wav(),
            "--speaker-boxes", "[[0,0,48,96],[48,0,96,96]]", "--engine-command", "false",
        ])
        #expect(result.status != 0)
        #expect(result.output.contains("--speaker-boxes needs --audio2"))
    }

    @Test(.enabled(if: PreviewEngine.isAvailable, "the engine package is missing"))
    func thePreviewEngineMakesAPlayableVideoAndItsLiveStream() throws {
        let output = TestSupport.makeTemporaryDirectory("itk-gen") + "/talk.mp4"
        let audio = try PreviewEngine.speech(seconds: 2)
        let live = TestSupport.makeTemporaryDirectory("itk-gen-live")
        let result = try generate([
            "--image", try PreviewEngine.portrait(), "--audio", audio, "--output", output, "--live-dir", live,
        ])
        #expect(result.status == 0, "\(result.output)")
        let probe = try MediaProbe(path: output)
        #expect(probe.stream("video")?["codec_name"] == .string("h264"))
        #expect(probe.stream("audio")?["codec_name"] == .string("aac"))
        // The live stream a local player follows, ended
        let stream = try PlaylistProbe(url: live + "/live.m3u8")
        #expect(stream.codecs == ["h264", "aac"])
        #expect(abs((stream.duration ?? 0) - (probe.duration("video") ?? 0)) < 0.3)
    }
}
