import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import JobService

/// Batches (`POST /api/batches`): one portrait and several recordings (or pairs) become one job each, all or
/// nothing; the batch is followed, cancelled and downloaded as one, and is its owner's alone. In process, with an
/// engine that never runs jobs (they stay queued).
@Suite struct BatchTests {
    private func form(images: Int = 1, audios: Int, fields: [String: String] = [:]) throws -> MultipartForm {
        var form = MultipartForm()
        for _ in 0..<images { try form.addFile("image", path: try TestSupport.png(), contentType: "image/png") }
        for _ in 0..<audios { try form.addFile("audio", path: try TestSupport.wav(), contentType: "audio/wav") }
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) { form.addField(name, value) }
        return form
    }

    private func post(_ client: any TestClientProtocol, _ form: MultipartForm, as token: String) async throws
        -> TestResponse
    {
        var headers = form.headers
        headers[.authorization] = "Bearer \(token)"
        return try await client.execute(uri: "/api/batches", method: .post, headers: headers, body: form.body)
    }

    private func get(_ client: any TestClientProtocol, _ uri: String, as token: String) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: AuthTestApp.bearer(token))
    }

    @Test func onePortraitAndThreeRecordingsMakeThreeJobsOfOneBatch() async throws {
        try await AuthTestApp.run { service, client, keys in
            let answer = try await post(client, try form(audios: 3, fields: ["seed": "5"]), as: keys.alice)
            #expect(answer.status == .ok, "\(answer.json)")
            let batch = try #require(answer.json["batch_id"]?.stringValue)
            let ids = try #require(answer.json["request_ids"]?.arrayValue?.compactMap { $0.stringValue })
            #expect(ids.count == 3)
            #expect(answer.json["requests"]?.arrayValue?.first?["params"]?["seed"] == .integer(5))
            let status = try await get(client, "/api/batches/\(batch)", as: keys.alice)
            #expect(status.json["total"] == .integer(3) && status.json["status"] == .string("queued"))
            #expect(status.json["counts"]?["queued"] == .integer(3))
            let job = try await get(client, "/api/status/\(ids[1])", as: keys.alice)
            #expect(job.json["batch_id"] == .string(batch))
            // Each job has its own inputs
            for id in ids {
                let stored = try #require(try await service.repository.job(id: id))
                #expect(FileManager.default.fileExists(atPath: stored.imagePath))
                #expect(FileManager.default.fileExists(atPath: stored.audioPath))
            }
        }
    }

    @Test func pairsTakeOneImagePerRecordingAndAMismatchKeepsNothing() async throws {
        try await AuthTestApp.run { service, client, keys in
            let pairs = try await post(client, try form(images: 2, audios: 2), as: keys.alice)
            #expect(pairs.status == .ok)
            let mismatch = try await post(client, try form(images: 2, audios: 3), as: keys.alice)
            #expect(mismatch.status == .unprocessableContent)
            #expect(mismatch.json["error"]?["field"] == .string("image"))
            #expect(try await service.repository.activeJobs().queued.count == 2)
        }
    }

    @Test func oneBadFileRefusesTheWholeBatch() async throws {
        try await AuthTestApp.run { service, client, keys in
            var bad = try form(audios: 2)
            bad.addFile("audio", filename: "noise.wav", contentType: "audio/wav", data: Data(repeating: 7, count: 4000))
            let answer = try await post(client, bad, as: keys.alice)
            #expect(answer.status.code == 415 || answer.status.code == 422, "\(answer.json)")
            #expect(try await service.repository.activeJobs().queued.isEmpty)
            let uploads = try FileManager.default.contentsOfDirectory(atPath: service.configuration.uploadsDirectory)
            #expect(uploads.isEmpty, "nothing of the refused batch is kept")
        }
    }

    @Test func aBatchThatDoesNotFitTheQueueIsRefusedWhole() async throws {
        try await AuthTestApp.run(settings: ["max-queue-size": "2"]) { service, client, keys in
            let answer = try await post(client, try form(audios: 3), as: keys.alice)
            #expect(answer.status == .tooManyRequests)
            #expect(answer.json["error"]?["code"] == .string("queue_full"))
            #expect(try await service.repository.activeJobs().queued.isEmpty)
        }
    }

    @Test func cancellingABatchCancelsEveryJobAndAnotherKeySeesNoBatch() async throws {
        try await AuthTestApp.run { _, client, keys in
            let answer = try await post(client, try form(audios: 2), as: keys.alice)
            let batch = try #require(answer.json["batch_id"]?.stringValue)
            for (method, uri) in [
                (HTTPRequest.Method.get, "/api/batches/\(batch)"), (.delete, "/api/batches/\(batch)"),
                (.get, "/api/batches/\(batch)/results.zip"),
            ] {
                let response = try await client.execute(uri: uri, method: method, headers: AuthTestApp.bearer(keys.bob))
                #expect(response.status == .notFound, "\(method) \(uri)")
            }
            let cancelled = try await client.execute(
                uri: "/api/batches/\(batch)", method: .delete, headers: AuthTestApp.bearer(keys.alice))
            #expect(cancelled.json["status"] == .string("cancelled"))
            #expect(cancelled.json["counts"]?["cancelled"] == .integer(2))
            let zip = try await get(client, "/api/batches/\(batch)/results.zip", as: keys.alice)
            #expect(zip.status == .conflict && zip.json["error"]?["code"] == .string("not_ready"))
        }
    }

    @Test func theResultsArchiveHoldsTheFinishedVideos() async throws {
        try await AuthTestApp.run { service, client, keys in
            let answer = try await post(client, try form(audios: 3), as: keys.alice)
            let batch = try #require(answer.json["batch_id"]?.stringValue)
            let ids = try #require(answer.json["request_ids"]?.arrayValue?.compactMap { $0.stringValue })
            // Two of the three finish (the test plays the engine)
            for (index, id) in ids.prefix(2).enumerated() {
                _ = try await service.repository.claimNextJob()
                let path = service.configuration.resultsDirectory + "/\(id).mp4"
                FileManager.default.createFile(atPath: path, contents: Data(repeating: UInt8(index + 1), count: 1000))
                _ = try await service.repository.complete(
                    id,
                    output: JobOutput(
                        durationSeconds: 1, frames: 25, width: 64, height: 64, fps: 25, bytes: 1000, warnings: []))
            }
            let status = try await get(client, "/api/batches/\(batch)", as: keys.alice)
            #expect(status.json["status"] == .string("queued") || status.json["status"] == .string("processing"))
            let zip = try await get(client, "/api/batches/\(batch)/results.zip", as: keys.alice)
            #expect(zip.status == .ok && zip.headers[.contentType] == "application/zip")
            let archive = TestSupport.makeTemporaryDirectory() + "/results.zip"
            FileManager.default.createFile(atPath: archive, contents: Data(buffer: zip.body))
            let check = """
                import sys, zipfile
                z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None
                names = z.namelist(); assert names == ["1-\(ids[0]).mp4", "2-\(ids[1]).mp4"], names
                assert z.read(names[1]) == bytes([2]) * 1000
                """
            #expect(try TestSupport.runProgram(["python3", "-c", check, archive]) == 0)
        }
    }

    @Test func theArchiveIsWrittenOneChunkAtATime() async throws {
        let folder = TestSupport.makeTemporaryDirectory()
        var files: [(name: String, path: String)] = []
        for index in 0..<3 {
            let path = folder + "/\(index).mp4"
            FileManager.default.createFile(
                atPath: path, contents: Data((0..<3_000_000).map { UInt8(($0 + index) % 251) }))
            files.append((name: "\(index).mp4", path: path))
        }
        let archive = try ZipStream(files: files)
        var total = 0
        var largest = 0
        try await archive.write { buffer in
            total += buffer.readableBytes
            largest = max(largest, buffer.readableBytes)
        }
        #expect(total == archive.byteCount)
        #expect(largest <= 1 << 18, "never more than one 256 KiB chunk of a 3 MB file at once")
    }
}
