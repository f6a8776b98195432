import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import JobService

/// Watching a job while it is made: the engine's `segment` events become the HLS playlist
/// (`/api/result/{id}/live.m3u8`), the segment files (`/api/result/{id}/live/{file}`), `segments_ready` and
/// `playlist_url` in the status, and `clip_ready` on the WebSocket. The engine is played by the test
/// (`ScriptedEngine`), so each step can be looked at before the next.
@Suite struct LiveStreamTests {
    struct Harness: Sendable {
        let service: InfiniteTalkService
        let engine: ScriptedEngine
        let client: any TestClientProtocol
        let log: JobLog

        var files: JobFiles {
            let configuration = service.configuration
            return JobFiles(
                uploadsDirectory: configuration.uploadsDirectory, resultsDirectory: configuration.resultsDirectory,
                liveDirectory: configuration.liveDirectory)
        }

        /// Queues a job and waits until the engine has it.
        func submit() async throws -> (Job, ScriptedEngine.RunningJob) {
            let job = try await TestSupport.enqueueJob(service.queue, files: files)
            let running = try await engine.nextJob()
            #expect(running.request.jobId == job.id)
            return (job, running)
        }

        /// Writes clip `clip`'s files as the engine does (the init segment with the first), sends `segment`, and
        /// waits until the service recorded it.
        func finishClip(_ clip: Int, of running: ScriptedEngine.RunningJob, clips: Int? = 3) async throws {
            let folder = try #require(running.request.segmentsDir)
            if clip == 1 { try Self.initSegment.write(to: URL(fileURLWithPath: folder + "/init.mp4")) }
            try Self.mediaSegment(clip).write(to: URL(fileURLWithPath: folder + "/" + Self.fileName(clip)))
            running.send(
                .segment(
                    EngineSegment(
                        jobId: running.request.jobId, clip: clip, clips: clips, file: Self.fileName(clip),
                        initFile: "init.mp4", durationSeconds: 4, endSeconds: Double(clip) * 4)))
            try await log.waitFor(running.request.jobId, [.processing]) { $0.live?.segments.count == clip }
        }

        /// Writes the video and sends `done`; waits until the job completed.
        func complete(_ running: ScriptedEngine.RunningJob) async throws {
            let id = running.request.jobId
            try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: files.resultPath(for: id)))
            running.send(
                .done(
                    EngineDone(
                        jobId: id, outputPath: running.request.outputPath, frames: 300, durationSeconds: 12, fps: 25,
                        width: 64, height: 64)))
            try await log.waitFor(id, [.completed])
        }

        func get(_ uri: String, method: HTTPRequest.Method = .get, headers: HTTPFields = [:]) async throws
            -> TestResponse
        {
            try await client.execute(uri: uri, method: method, headers: headers)
        }

        static func fileName(_ clip: Int) -> String { String(format: "clip-%05d.m4s", clip) }
        static let initSegment = Data("init segment".utf8)
        /// 1000 bytes: 0, 1, ..., 255, 0, ... plus the clip number.
        static func mediaSegment(_ clip: Int) -> Data { Data((0..<1000).map { UInt8(($0 + clip) % 256) }) }
    }

    /// The whole service (worker included) on the scripted engine, in process.
    private func withService(
        settings: [String: String] = [:], _ body: @escaping @Sendable (Harness) async throws -> Void
    ) async throws {
        let engine = ScriptedEngine(hello: try #require(TestSupport.fakeEngineHello))
        let configuration = TestSupport.configuration(engine: [], settings: settings)
        let service = try await buildApplication(
            configuration, repository: MemoryJobRepository(), engine: engine, logger: TestSupport.quietLogger)
        let log = JobLog(service.queue)
        try await service.application.test(.router) { client in
            try await body(Harness(service: service, engine: engine, client: client, log: log))
        }
    }

    private static func playlist(_ clips: ClosedRange<Int>, ended: Bool) -> String {
        var lines = [
            "#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:EVENT",
            "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-MAP:URI=\"live/init.mp4\"",
        ]
        for clip in clips { lines += ["#EXTINF:4.000,", "live/\(Harness.fileName(clip))"] }
        if ended { lines.append("#EXT-X-ENDLIST") }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: - The playlist

    @Test func thePlaylistGrowsClipByClipAndEndsWhenTheJobCompletes() async throws {
        try await withService { harness in
            // Given a job on the engine: it was told where to write, a folder made empty for it
            let (job, running) = try await harness.submit()
            let folder = try #require(running.request.segmentsDir)
            #expect(folder == URL(fileURLWithPath: harness.files.liveFolder(for: job.id)).standardizedFileURL.path)
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == [])
            let uri = "/api/result/\(job.id)/live.m3u8"

            // Before any clip: 404 no_segments_yet, and the status says none are ready
            let early = try await harness.get(uri)
            #expect(early.status == .notFound && early.errorCode == "no_segments_yet")
            expectConforms(early, "GET", "/api/result/{request_id}/live.m3u8")
            var status = try await harness.get("/api/status/\(job.id)")
            #expect(status.json["segments_ready"] == .integer(0) && status.json["playlist_url"] == .null)

            // When clips 1 and 2 are ready
            try await harness.finishClip(1, of: running)
            let first = try await harness.get(uri)
            #expect(first.status == .ok)
            #expect(String(buffer: first.body) == Self.playlist(1...1, ended: false))
            try await harness.finishClip(2, of: running)
            let second = try await harness.get(uri)
            #expect(String(buffer: second.body) == Self.playlist(1...2, ended: false))
            #expect(second.headers[.contentType] == "application/vnd.apple.mpegurl")
            #expect(second.headers[.cacheControl] == "no-store")
            expectConforms(second, "GET", "/api/result/{request_id}/live.m3u8")
            status = try await harness.get("/api/status/\(job.id)")
            #expect(status.json["status"] == .string("processing"))
            #expect(status.json["segments_ready"] == .integer(2))
            #expect(status.json["playlist_url"] == .string(uri))
            expectConforms(status, "GET", "/api/status/{request_id}")

            // Then, once the job completed, the playlist is ended and stays
            try await harness.finishClip(3, of: running)
            try await harness.complete(running)
            let ended = try await harness.get(uri)
            #expect(String(buffer: ended.body) == Self.playlist(1...3, ended: true))
            let head = try await harness.get(uri, method: .head)
            #expect(head.status == .ok && head.body.readableBytes == 0)
            status = try await harness.get("/api/status/\(job.id)")
            #expect(status.json["segments_ready"] == .integer(3) && status.json["playlist_url"] == .string(uri))
            let listed = try await harness.get("/api/requests")
            #expect(listed.json["requests"]?.arrayValue?.first?["segments_ready"] == .integer(3))
        }
    }

    @Test func aCancelledJobsPlaylistIsEndedAndItsSegmentsKept() async throws {
        try await withService { harness in
            let (job, running) = try await harness.submit()
            try await harness.finishClip(1, of: running)
            // When the client cancels
            let cancel = try await harness.client.execute(uri: "/api/cancel/\(job.id)", method: .post)
            #expect(cancel.status == .ok)
            try await harness.log.waitFor(job.id, [.cancelled])
            // Then the playlist says no clip will follow, and what was made can still be watched
            let playlist = try await harness.get("/api/result/\(job.id)/live.m3u8")
            #expect(String(buffer: playlist.body) == Self.playlist(1...1, ended: true))
            let segment = try await harness.get("/api/result/\(job.id)/live/clip-00001.m4s")
            #expect(segment.status == .ok)
        }
    }

    @Test func aFailedJobsPlaylistIsEnded() async throws {
        try await withService { harness in
            let (job, running) = try await harness.submit()
            try await harness.finishClip(1, of: running)
            running.send(.failed(EngineError(jobId: job.id, code: "internal", message: "boom", retryable: false)))
            try await harness.log.waitFor(job.id, [.failed])
            let playlist = try await harness.get("/api/result/\(job.id)/live.m3u8")
            #expect(String(buffer: playlist.body) == Self.playlist(1...1, ended: true))
        }
    }

    @Test func anUnknownJobHasNoPlaylist() async throws {
        try await withService { harness in
            let id = UUID().uuidString.lowercased()
            for uri in ["/api/result/\(id)/live.m3u8", "/api/result/\(id)/live/init.mp4"] {
                let response = try await harness.get(uri)
                #expect(response.status == .notFound && response.errorCode == "not_found", "\(uri)")
            }
        }
    }

    // MARK: - The segments

    @Test func segmentsAreServedWithTypesValidatorsAndRanges() async throws {
        try await withService { harness in
            let (job, running) = try await harness.submit()
            try await harness.finishClip(1, of: running)
            let base = "/api/result/\(job.id)/live"
            let path = "/api/result/{request_id}/live/{file}"

            let initSegment = try await harness.get("\(base)/init.mp4")
            #expect(initSegment.status == .ok)
            #expect(initSegment.headers[.contentType] == "video/mp4")
            #expect(Data(initSegment.body.readableBytesView) == Harness.initSegment)
            expectConforms(initSegment, "GET", path)

            let clip = try await harness.get("\(base)/clip-00001.m4s")
            #expect(clip.status == .ok)
            #expect(clip.headers[.contentType] == "video/iso.segment")
            #expect(clip.headers[.cacheControl] == "private, no-cache")
            #expect(clip.headers[.acceptRanges] == "bytes")
            #expect(Data(clip.body.readableBytesView) == Harness.mediaSegment(1))
            let eTag = try #require(clip.headers[.eTag])
            #expect(eTag != initSegment.headers[.eTag])

            let head = try await harness.get("\(base)/clip-00001.m4s", method: .head)
            #expect(head.status == .ok && head.headers[.contentLength] == "1000" && head.body.readableBytes == 0)
            #expect(head.headers[.eTag] == eTag)

            let cached = try await harness.get("\(base)/clip-00001.m4s", headers: [.ifNoneMatch: eTag])
            #expect(cached.status == .notModified && cached.body.readableBytes == 0)

            let part = try await harness.get("\(base)/clip-00001.m4s", headers: [.range: "bytes=10-19"])
            #expect(part.status == .partialContent)
            #expect(part.headers[.contentRange] == "bytes 10-19/1000")
            #expect(Data(part.body.readableBytesView) == Harness.mediaSegment(1)[10...19])
            expectConforms(part, "GET", path)

            let outside = try await harness.get("\(base)/clip-00001.m4s", headers: [.range: "bytes=5000-"])
            #expect(outside.status == .rangeNotSatisfiable && outside.errorCode == "range_not_satisfiable")
            expectConforms(outside, "GET", path)
        }
    }

    @Test func onlyTheFilesTheJobRecordedAreServed() async throws {
        try await withService { harness in
            let (job, running) = try await harness.submit()
            try await harness.finishClip(1, of: running)
            // Given files in the folder the engine has not announced: the next clip, one being written, its own
            // playlist, and the job's result elsewhere
            let folder = try #require(running.request.segmentsDir)
            for name in ["clip-00002.m4s", "clip-00002.m4s.part", "live.m3u8"] {
                try Data([1, 2, 3]).write(to: URL(fileURLWithPath: folder + "/" + name))
            }
            try Data([9]).write(to: URL(fileURLWithPath: harness.files.resultPath(for: job.id)))
            let base = "/api/result/\(job.id)/live"
            // Then none of them is served, nor anything reached by climbing out of the folder
            for name in [
                "clip-00002.m4s", "clip-00002.m4s.part", "live.m3u8", "clip-00001.m4s.part",
                "..%2F..%2Fresults%2F\(job.id).mp4", "..%2F..%2Fresults", "%2Fetc%2Fpasswd",
            ] {
                let response = try await harness.get("\(base)/\(name)")
                #expect(response.status == .notFound, "\(name)")
                #expect(response.errorCode == "not_found", "\(name)")
            }
            for uri in ["\(base)/..", "\(base)/.", "\(base)/../../results/\(job.id).mp4"] {
                let response = try await harness.get(uri)
                #expect(response.status != .ok && response.status != .partialContent, "\(uri)")
            }
        }
    }

    @Test func aSegmentNamedOutsideTheProtocolIsIgnored() async throws {
        try await withService { harness in
            let (job, running) = try await harness.submit()
            // Given a segment event naming a file outside the folder (the file exists)
            try Data([1]).write(to: URL(fileURLWithPath: harness.files.liveDirectory + "/escape.m4s"))
            running.send(
                .segment(
                    EngineSegment(
                        jobId: job.id, clip: 1, clips: 2, file: "../escape.m4s", initFile: "init.mp4",
                        durationSeconds: 4, endSeconds: 4)))
            // When a proper one follows
            try await harness.finishClip(1, of: running)
            // Then only that one was recorded
            let live = try #require(try await harness.service.repository.job(id: job.id)?.live)
            #expect(live.segments.map(\.file) == ["clip-00001.m4s"])
        }
    }

    // MARK: - Lifecycle

    @Test func aRetriedJobStartsItsLiveStreamAfresh() async throws {
        try await withService(settings: ["max-attempts": "2"]) { harness in
            // Given a job with two clips ready when the engine fails with a retryable error
            let (job, first) = try await harness.submit()
            try await harness.finishClip(1, of: first)
            try await harness.finishClip(2, of: first)
            first.send(.failed(EngineError(jobId: job.id, code: "out_of_memory", message: "oom", retryable: true)))
            // When it is sent again
            let second = try await harness.engine.nextJob()
            #expect(second.request.jobId == job.id)
            // Then the last attempt's files and records are gone
            let folder = try #require(second.request.segmentsDir)
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == [])
            let playlist = try await harness.get("/api/result/\(job.id)/live.m3u8")
            #expect(playlist.errorCode == "no_segments_yet")
            let status = try await harness.get("/api/status/\(job.id)")
            #expect(status.json["attempts"] == .integer(2) && status.json["segments_ready"] == .integer(0))
            // And the new attempt's clips are listed alone
            try await harness.finishClip(1, of: second)
            try await harness.complete(second)
            let ended = try await harness.get("/api/result/\(job.id)/live.m3u8")
            #expect(String(buffer: ended.body) == Self.playlist(1...1, ended: true))
        }
    }

    @Test func retentionDeletesTheLiveStreamWithTheJob() async throws {
        try await withService(settings: ["retention": "60s"]) { harness in
            let (job, running) = try await harness.submit()
            try await harness.finishClip(1, of: running)
            try await harness.complete(running)
            // When the sweep runs two minutes later
            #expect(await harness.service.sweepExpiredResults(now: Date(timeIntervalSinceNow: 120)) == 1)
            // Then the folder is gone, the stream says so, and the status no longer offers it
            #expect(!FileManager.default.fileExists(atPath: harness.files.liveFolder(for: job.id)))
            for uri in ["/api/result/\(job.id)/live.m3u8", "/api/result/\(job.id)/live/clip-00001.m4s"] {
                let response = try await harness.get(uri)
                #expect(response.status == .gone && response.errorCode == "result_expired", "\(uri)")
            }
            expectConforms(
                try await harness.get("/api/result/\(job.id)/live.m3u8"), "GET",
                "/api/result/{request_id}/live.m3u8")
            let status = try await harness.get("/api/status/\(job.id)")
            #expect(status.json["segments_ready"] == .integer(0) && status.json["playlist_url"] == .null)
        }
    }
}
