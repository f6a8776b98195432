import Foundation
import HummingbirdTesting
import HummingbirdWSTesting
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing
import WSClient

@testable import JobService

/// `WebSocket /ws` on a live server, with the fake engine.
@Suite struct ProgressSocketTests {
    /// Messages one client received, in order.
    final class Inbox: Sendable {
        private let messages = Mutex<[String]>([])
        func add(_ text: String) { messages.withLock { $0.append(text) } }
        var all: [JSONValue] { messages.withLock { $0 }.compactMap { try? JSONValue.parse($0) } }
        var texts: [String] { messages.withLock { $0 } }
    }

    @Test func clientsGetASnapshotThenEveryChangeInOrder() async throws {
        let configuration = TestSupport.configuration(
            engine: TestSupport.fakeEngineCommand(["--job-seconds", "1"]),
            settings: ["allowed-origins": TestSupport.webSocketClientOrigin])
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        let inbox = Inbox()
        try await service.application.test(.live) { client in
            try await TestSupport.waitUntilReady(service.engine)
            let form = try MultipartForm.valid()
            try await client.ws("/ws") { inbound, outbound, _ in
                var requestID: String?
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message else { continue }
                    inbox.add(text)
                    let json = try JSONValue.parse(text)
                    if inbox.texts.count == 1 {
                        // After the snapshot: ping, then submit a job.
                        try await outbound.write(.text(#"{"type":"ping"}"#))
                        let submitted = try await client.execute(
                            uri: "/api/generate", method: .post,
                            headers: form.headers, body: form.body)
                        requestID = submitted.json["request_id"]?.stringValue
                    }
                    if json["type"] == .string("status_update"), json["status"] == .string("completed"),
                        json["request_id"]?.stringValue == requestID
                    {
                        break
                    }
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
        let messages = inbox.all
        // A snapshot first
        #expect(messages.first?["type"] == .string("queue_update"))
        #expect(messages.contains { $0["type"] == .string("pong") })
        // Every message matches the OpenAPI document
        for text in inbox.texts {
            #expect(OpenAPISpec.problems(ofServerMessage: text).isEmpty, "\(text)")
        }
        // The job's statuses in order, progress in between
        let jobMessages = messages.filter { $0["request_id"] != nil }
        var statuses: [String] = []
        for message in jobMessages where message["type"] == .string("status_update") {
            if let status = message["status"]?.stringValue, statuses.last != status { statuses.append(status) }
        }
        #expect(statuses == ["queued", "processing", "completed"])
        let kinds = jobMessages.compactMap { $0["type"]?.stringValue }
        let firstProgress = try #require(kinds.firstIndex(of: "progress_update"))
        let processing = try #require(jobMessages.firstIndex { $0["status"] == .string("processing") })
        #expect(processing < firstProgress)
        let fractions = jobMessages.filter { $0["type"] == .string("progress_update") }.compactMap {
            $0["progress"]?.doubleValue
        }
        #expect(fractions == fractions.sorted(), "progress never goes backwards")
        #expect(fractions.last == 1.0)
        #expect(messages.filter { $0["type"] == .string("queue_update") }.count >= 3)
    }

    @Test func clipReadyFollowsTheRecordedSegment() async throws {
        let engine = ScriptedEngine(hello: try #require(TestSupport.fakeEngineHello))
        let configuration = TestSupport.configuration(
            engine: [], settings: ["allowed-origins": TestSupport.webSocketClientOrigin])
        let service = try await buildApplication(
            configuration, repository: MemoryJobRepository(), engine: engine, logger: TestSupport.quietLogger)
        let files = JobFiles(
            uploadsDirectory: configuration.uploadsDirectory, resultsDirectory: configuration.resultsDirectory,
            liveDirectory: configuration.liveDirectory)
        let inbox = Inbox()
        let jobID = Mutex<String?>(nil)
        try await service.application.test(.live) { client in
            _ = try await client.ws("/ws") { inbound, outbound, _ in
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message else { continue }
                    inbox.add(text)
                    let json = try JSONValue.parse(text)
                    if inbox.texts.count == 1 {
                        // After the snapshot: a job whose first clip the engine finishes
                        let job = try await TestSupport.enqueueJob(service.queue, files: files)
                        jobID.withLock { $0 = job.id }
                        let running = try await engine.nextJob()
                        let folder = try #require(running.request.segmentsDir)
                        for name in ["init.mp4", "clip-00001.m4s"] {
                            try Data([1]).write(to: URL(fileURLWithPath: folder + "/" + name))
                        }
                        running.send(
                            .segment(
                                EngineSegment(
                                    jobId: job.id, clip: 1, clips: 3, file: "clip-00001.m4s", initFile: "init.mp4",
                                    durationSeconds: 3.24, endSeconds: 3.24)))
                    }
                    if json["type"] == .string("clip_ready") { break }
                }
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
        let id = try #require(jobID.withLock { $0 })
        let messages = inbox.all
        let clipReady = try #require(messages.last)
        #expect(clipReady["type"] == .string("clip_ready"))
        #expect(clipReady["request_id"] == .string(id))
        #expect(clipReady["clip"] == .integer(1) && clipReady["clips"] == .integer(3))
        #expect(clipReady["duration_seconds"]?.doubleValue == 3.24)
        #expect(clipReady["playlist_url"] == .string("/api/result/\(id)/live.m3u8"))
        for text in inbox.texts {
            #expect(OpenAPISpec.problems(ofServerMessage: text).isEmpty, "\(text)")
        }
        // The status object says so first
        let statusUpdate = messages.last { $0["type"] == .string("status_update") }
        #expect(statusUpdate?["segments_ready"] == .integer(1))
        #expect(statusUpdate?["playlist_url"] == clipReady["playlist_url"])
    }

    @Test func progressUpdatesAreLimitedPerJob() {
        let clock = ManualClock()
        let broadcaster = ProgressBroadcaster(progressInterval: .milliseconds(100), clock: clock)
        #expect(broadcaster.admitProgress(for: "a"))
        clock.advance(by: .milliseconds(99))
        #expect(!broadcaster.admitProgress(for: "a"), "a second report within 100 ms is dropped")
        #expect(broadcaster.admitProgress(for: "b"), "other jobs are not affected")
        #expect(broadcaster.admitProgress(for: "a", force: true), "stage changes always pass")
        clock.advance(by: .milliseconds(100))
        #expect(broadcaster.admitProgress(for: "a"))
    }

    // MARK: - The broadcaster, on in-memory channels

    private func connectedChannel() async throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).get()
        return channel
    }

    /// The text of every frame the channel was sent, and the close codes.
    private func sent(_ channel: EmbeddedChannel) throws -> (texts: [String], closeCodes: [WebSocketErrorCode]) {
        channel.embeddedEventLoop.run()
        var texts: [String] = []
        var closeCodes: [WebSocketErrorCode] = []
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
            var data = frame.unmaskedData
            switch frame.opcode {
            case .text: texts.append(String(buffer: data))
            case .connectionClose: closeCodes += [data.readWebSocketErrorCode()].compactMap { $0 }
            default: break
            }
        }
        return (texts, closeCodes)
    }

    @Test func aNewClientGetsWhatHappenedDuringItsSnapshotAfterIt() async throws {
        let broadcaster = ProgressBroadcaster()
        let channel = try await connectedChannel()
        let id = broadcaster.subscribe(channel)
        broadcaster.broadcast(["n": 1])
        #expect(try sent(channel).texts.isEmpty, "held while the snapshot is being sent")
        broadcaster.goLive(id)
        broadcaster.broadcast(["n": 2])
        #expect(try sent(channel).texts == [#"{"n":1}"#, #"{"n":2}"#])
        broadcaster.unsubscribe(id)
        broadcaster.broadcast(["n": 3])
        #expect(try sent(channel).texts.isEmpty)
    }

    @Test func aClientThatCannotKeepUpIsClosedAndTheOthersStillHearEverything() async throws {
        let broadcaster = ProgressBroadcaster()
        let slow = try await connectedChannel()
        let fast = try await connectedChannel()
        for channel in [slow, fast] { broadcaster.goLive(broadcaster.subscribe(channel)) }
        slow.isWritable = false
        broadcaster.broadcast(["n": 1])
        #expect(try sent(slow).texts.isEmpty)
        #expect(!slow.isActive, "its connection is closed")
        #expect(broadcaster.clientCount == 1, "and it is forgotten")
        broadcaster.broadcast(["n": 2])
        #expect(try sent(fast).texts == [#"{"n":1}"#, #"{"n":2}"#])
    }

    @Test func shuttingDownSaysGoingAwayToEveryClient() async throws {
        let broadcaster = ProgressBroadcaster()
        let channel = try await connectedChannel()
        _ = broadcaster.subscribe(channel)
        broadcaster.finishAll()
        #expect(try sent(channel).closeCodes == [.goingAway])
        #expect(broadcaster.clientCount == 0)
    }
}
