import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import Uploads

@testable import JobService

/// Every endpoint and every error path, in process (`.router`) on an in-memory store, each answer checked against
/// `openapi.json`. Unless a test names an engine command, the engine is a stand-in that says the fake engine's hello
/// (so options are checked) and is never ready (so submitted jobs stay queued).
@Suite struct RouterTests {
    /// - Parameters:
    ///   - engine: an engine command to supervise; `nil` for the silent stand-in.
    ///   - hello: what the silent stand-in says it takes (`nil`: it never says hello).
    ///   - settings: configuration settings by flag (`["max-queue-size": "1"]`).
    ///   - limits: upload limits replacing the configured ones.
    ///   - diskSpace: what the data folder's free space is said to be.
    private func withApp(
        engine: [String]? = nil, hello: EngineHello? = TestSupport.fakeEngineHello, settings: [String: String] = [:],
        limits: UploadLimits? = nil, diskSpace: DiskSpace = .system,
        _ body: @escaping @Sendable (InfiniteTalkService, any TestClientProtocol) async throws -> Void
    ) async throws {
        var configuration = TestSupport.configuration(engine: engine ?? [], settings: settings)
        if let limits { configuration.uploadLimits = limits }
        let service = try await buildApplication(
            configuration, repository: MemoryJobRepository(), engine: engine == nil ? SilentEngine(hello: hello) : nil,
            diskSpace: diskSpace, logger: TestSupport.quietLogger)
        try await service.application.test(.router) { client in
            try await body(service, client)
        }
    }

    private func submit(_ client: any TestClientProtocol, _ form: MultipartForm) async throws -> TestResponse {
        try await client.execute(uri: "/api/generate", method: .post, headers: form.headers, body: form.body)
    }

    private func submitValid(_ client: any TestClientProtocol, fields: [String: String] = [:]) async throws -> String {
        let response = try await submit(client, try .valid(fields: fields))
        #expect(response.status == .ok, "\(response.json)")
        return try #require(response.json["request_id"]?.stringValue)
    }

    // MARK: - POST /api/generate

    @Test func aValidUploadIsQueuedWithDefaults() async throws {
        try await withApp { service, client in
            let response = try await submit(client, try .valid())
            #expect(response.status == .ok)
            expectConforms(response, "POST", "/api/generate")
            let json = response.json
            #expect(json["status"] == .string("queued"))
            #expect(json["message"] == .string("Request added to queue"))
            #expect(json["position_in_queue"] == .integer(1))
            #expect(json["params"]?["resolution"] == .string("480p"))
            #expect(json["params"]?["steps"] == .integer(4))
            #expect(json["params"]?["prompt"] == .string("A person is talking."))
            #expect(json["params"]?["seed"]?.intValue != nil)
            let id = try #require(json["request_id"]?.stringValue)
            let job = try #require(try await service.repository.job(id: id))
            #expect(abs(job.audioSeconds - 1) < 0.05)
            #expect(FileManager.default.fileExists(atPath: job.imagePath))
            #expect(job.imagePath.hasSuffix("/\(id)/image"))
        }
    }

    @Test func optionsAreReadFromTheForm() async throws {
        try await withApp { _, client in
            let fields = [
                "steps": "8", "seed": "42", "resolution": "720p", "prompt": "A woman sings.",
                "negative_prompt": "blurry", "shift": "5", "text_guidance_scale": "4.5",
                "audio_guidance_scale": "3", "color_correction": "0.2", "unknown_field": "ignored",
            ]
            let response = try await submit(client, try .valid(fields: fields))
            #expect(response.status == .ok)
            let params = try #require(response.json["params"])
            #expect(params["steps"] == .integer(8))
            #expect(params["seed"] == .integer(42))
            #expect(params["resolution"] == .string("720p"))
            #expect(params["prompt"] == .string("A woman sings."))
            #expect(params["negative_prompt"] == .string("blurry"))
            #expect(params["text_guidance_scale"]?.doubleValue == 4.5)
            #expect(params["color_correction"]?.doubleValue == 0.2)
        }
    }

    // MARK: - A full disk

    /// The job folders under `uploads/`.
    private func uploadFolders(_ service: InfiniteTalkService) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: service.configuration.uploadsDirectory)
    }

    @Test func anUploadBelowTheLowDiskWatermarkIs507AndReadyzSaysWhy() async throws {
        let nearlyFull = DiskSpace { _ in 100 << 20 } // 100 MiB free, 1 GiB wanted
        try await withApp(settings: ["min-free-disk": "1G"], diskSpace: nearlyFull) { service, client in
            let response = try await submit(client, try .valid())
            #expect(response.status.code == 507)
            expectConforms(response, "POST", "/api/generate")
            #expect(response.json["error"]?["code"] == .string("insufficient_storage"))
            #expect(try uploadFolders(service).isEmpty)
            #expect(try await service.repository.countsByStatus().isEmpty)
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .serviceUnavailable)
            expectConforms(ready, "GET", "/readyz")
            #expect(ready.json["status"] == .string("unavailable"))
            #expect(ready.json["reason"]?.stringValue?.hasPrefix("low disk space: 104857600 bytes free") == true)
        }
    }

    @Test func theDiskFillingUpDuringAnUploadIs507AndLeavesNoFiles() async throws {
        // Room when the request comes and for its first chunk, none from the next one: the disk fills meanwhile
        let asked = CallCount()
        let filling = DiskSpace { _ in asked.next() <= 2 ? 1 << 40 : 0 }
        try await withApp(settings: ["min-free-disk": "1M"], diskSpace: filling) { service, client in
            let response = try await submit(client, try .valid())
            #expect(response.status.code == 507)
            expectConforms(response, "POST", "/api/generate")
            #expect(response.json["error"]?["code"] == .string("insufficient_storage"))
            #expect(asked.value >= 3, "refused while writing, not before")
            #expect(try uploadFolders(service).isEmpty, "what was written is removed")
        }
    }

    @Test func withTheWatermarkOffUploadsAreAcceptedWhateverTheFreeSpace() async throws {
        try await withApp(settings: ["min-free-disk": "0"], diskSpace: DiskSpace { _ in 0 }) { _, client in
            _ = try await submitValid(client)
        }
    }

    // MARK: - Two speakers

    private func twoSpeakerForm(fields: [String: String] = [:]) throws -> MultipartForm {
        var form = try MultipartForm.valid(fields: fields)
        try form.addFile("audio2", path: try TestSupport.wav(seconds: 2), contentType: "audio/wav")
        return form
    }

    private func waitForHello(_ service: InfiniteTalkService) async throws {
        try await TestSupport.waitUntilReady(service.engine)
    }

    @Test func aSecondSpeakerIsStoredAndSentToTheEngine() async throws {
        let records = TestSupport.makeTemporaryDirectory("itk-jobs")
        try await withApp(engine: TestSupport.fakeEngineCommand(["--two-speakers", "--record-jobs", records])) {
            service, client in
            try await waitForHello(service)
            let log = JobLog(service.queue)
            let boxes = "[[0, 0, 48, 96], [48, 0, 96, 96]]"
            let response = try await submit(client, try twoSpeakerForm(fields: ["speaker_boxes": boxes]))
            #expect(response.status == .ok, "\(response.json)")
            expectConforms(response, "POST", "/api/generate")
            #expect(response.json["params"]?["speaker_boxes"]?.arrayValue?.count == 2)
            let id = try #require(response.json["request_id"]?.stringValue)
            let job = try #require(try await service.repository.job(id: id))
            #expect(job.audio2Path?.hasSuffix("/\(id)/audio2") == true)
            #expect(abs(job.audioSeconds - 2) < 0.05, "the video lasts as long as the longer track")
            try await log.waitFor(id, [.completed])
            let sent = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: records + "/\(id).json")))
            #expect(sent["params"]?["audio2_path"] == .string(job.audio2Path ?? ""))
            #expect(sent["params"]?["speaker_boxes"]?.arrayValue?[1].arrayValue?[0] == .integer(48))
        }
    }

    @Test func aSecondSpeakerNeedsAnEngineThatTakesTwo() async throws {
        try await withApp(engine: TestSupport.fakeEngineCommand([])) { service, client in
            try await waitForHello(service)
            let response = try await submit(client, try twoSpeakerForm())
            #expect(response.status == .unprocessableContent)
            #expect(response.errorCode == "two_speakers_unsupported")
            #expect(response.errorField == "audio2")
            expectConforms(response, "POST", "/api/generate")
            #expect(try await service.repository.activeJobs().queued.isEmpty, "nothing was queued")
        }
    }

    @Test(arguments: [
        ("[[0, 0, 48, 96], [48, 0, 96, 96]]", false), // boxes without audio2
        ("[[0, 0, 48, 96]]", true), // one box
        ("[[0, 0, 48, 96], [60, 0, 50, 96]]", true), // min > max
        ("left and right", true),
    ])
    func badSpeakerBoxesAreRefused(boxes: String, withSecondAudio: Bool) async throws {
        try await withApp(engine: TestSupport.fakeEngineCommand(["--two-speakers"])) { service, client in
            try await waitForHello(service)
            let fields = ["speaker_boxes": boxes]
            let response = try await submit(
                client, withSecondAudio ? try twoSpeakerForm(fields: fields) : try .valid(fields: fields))
            #expect(response.status == .unprocessableContent)
            #expect(response.errorCode == "invalid_parameter")
            #expect(response.errorField == "speaker_boxes")
        }
    }

    @Test(arguments: [
        ("steps", "abc"), ("steps", "0"), ("steps", "51"), ("resolution", "1080p"), ("seed", "-1"),
        ("seed", "2147483648"), ("shift", "0.1"), ("color_correction", "2"), ("text_guidance_scale", "nan"),
    ])
    func badOptionsAreRefusedNamingTheField(field: String, value: String) async throws {
        try await withApp { service, client in
            let response = try await submit(client, try .valid(fields: [field: value]))
            #expect(response.status == .unprocessableContent)
            #expect(response.errorCode == "invalid_parameter")
            #expect(response.errorField == field)
            expectConforms(response, "POST", "/api/generate")
            // Nothing was kept
            #expect(try await service.repository.list(status: nil, limit: 10, offset: 0).total == 0)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: service.configuration.uploadsDirectory)
            #expect(leftovers.isEmpty)
        }
    }

    @Test func aTooLongPromptIsRefused() async throws {
        try await withApp(settings: ["max-prompt-length": "10"]) { _, client in
            let response = try await submit(client, try .valid(fields: ["prompt": "far more than ten characters"]))
            #expect(response.errorCode == "invalid_parameter")
            #expect(response.errorField == "prompt")
        }
    }

    // MARK: - The engine's parameter schema

    @Test func theEnginesDeclaredParametersDecideWhatIsAccepted() async throws {
        let hello = try TestSupport.helloOfFakeEngine([
            "--resolutions", "720p,1080p", "--default-steps", "6", "--max-steps", "8",
        ])
        try await withApp(hello: hello) { _, client in
            // Defaults are the engine's
            let defaults = try await submit(client, try .valid())
            #expect(defaults.status == .ok, "\(defaults.json)")
            expectConforms(defaults, "POST", "/api/generate")
            #expect(defaults.json["params"]?["resolution"] == .string("720p"))
            #expect(defaults.json["params"]?["steps"] == .integer(6))
            // What it declares is taken, what it does not is refused
            let accepted = try await submit(client, try .valid(fields: ["resolution": "1080p", "steps": "8"]))
            #expect(accepted.status == .ok, "\(accepted.json)")
            #expect(accepted.json["params"]?["resolution"] == .string("1080p"))
            for (field, value) in [("resolution", "480p"), ("steps", "9")] {
                let refused = try await submit(client, try .valid(fields: [field: value]))
                #expect(refused.status == .unprocessableContent)
                #expect(refused.errorCode == "invalid_parameter")
                #expect(refused.errorField == field)
                expectConforms(refused, "POST", "/api/generate")
            }
        }
    }

    @Test func theStricterOfTheServiceAndEngineLimitsWins() async throws {
        try await withApp(settings: ["max-steps": "5"]) { _, client in
            let refused = try await submit(client, try .valid(fields: ["steps": "6"]))
            #expect(refused.errorField == "steps")
            let accepted = try await submit(client, try .valid(fields: ["steps": "5"]))
            #expect(accepted.status == .ok)
        }
    }

    @Test func withoutAnEngineHelloSubmissionsAre503AndNothingIsKept() async throws {
        try await withApp(hello: nil) { service, client in
            let response = try await submit(client, try .valid())
            #expect(response.status == .serviceUnavailable)
            #expect(response.errorCode == "engine_unavailable")
            expectConforms(response, "POST", "/api/generate")
            #expect(try await service.repository.list(status: nil, limit: 10, offset: 0).total == 0)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: service.configuration.uploadsDirectory)
            #expect(leftovers.isEmpty)
            // The page still gets its configuration, with no parameters to offer
            let config = try await client.execute(uri: "/api/config", method: .get)
            #expect(config.status == .ok)
            expectConforms(config, "GET", "/api/config")
            #expect(config.json["parameters"] == .array([]))
        }
    }

    /// One bad upload and the answer it must get.
    struct BadUpload: Sendable, CustomTestStringConvertible {
        let name: String
        let status: HTTPResponse.Status
        let code: String
        let field: String?
        var limits = UploadLimits()
        let make: @Sendable () throws -> (HTTPFields, ByteBuffer)
        var testDescription: String { name }

        static func form(_ build: @escaping @Sendable (inout MultipartForm) throws -> Void)
            -> @Sendable () throws -> (HTTPFields, ByteBuffer)
        {
            {
                var form = MultipartForm()
                try build(&form)
                return (form.headers, form.body)
            }
        }
    }

    static let badUploads: [BadUpload] = [
        BadUpload(
            name: "JSON instead of multipart", status: .unsupportedMediaType, code: "unsupported_content_type",
            field: nil,
            make: {
                var headers = HTTPFields()
                headers[.contentType] = "application/json"
                return (headers, ByteBuffer(string: "{}"))
            }),
        BadUpload(
            name: "broken multipart", status: .badRequest, code: "invalid_multipart", field: nil,
            make: {
                var headers = HTTPFields()
                headers[.contentType] = "multipart/form-data; boundary=xyz"
                return (headers, ByteBuffer(string: "this is not multipart at all"))
            }),
        BadUpload(
            name: "no image", status: .unprocessableContent, code: "missing_image", field: "image",
            make: BadUpload.form { try $0.addFile("audio", path: try TestSupport.wav()) }),
        BadUpload(
            name: "no audio", status: .unprocessableContent, code: "missing_audio", field: "audio",
            make: BadUpload.form { try $0.addFile("image", path: try TestSupport.png()) }),
        BadUpload(
            name: "text as image", status: .unsupportedMediaType, code: "unsupported_image_format", field: "image",
            make: BadUpload.form {
                $0.addFile(
                    "image", filename: "a.png", contentType: "image/png", data: Data(repeating: 0x41, count: 500))
                try $0.addFile("audio", path: try TestSupport.wav())
            }),
        BadUpload(
            name: "text as audio", status: .unsupportedMediaType, code: "unsupported_audio_format", field: "audio",
            make: BadUpload.form {
                try $0.addFile("image", path: try TestSupport.png())
                $0.addFile(
                    "audio", filename: "a.wav", contentType: "audio/wav", data: Data(repeating: 0x41, count: 500))
            }),
        BadUpload(
            name: "truncated PNG", status: .unprocessableContent, code: "invalid_image", field: "image",
            make: BadUpload.form {
                let png = try Data(contentsOf: URL(fileURLWithPath: try TestSupport.png()))
                $0.addFile("image", filename: "a.png", contentType: "image/png", data: png.prefix(14))
                try $0.addFile("audio", path: try TestSupport.wav())
            }),
        BadUpload(
            name: "tiny image", status: .unprocessableContent, code: "image_dimensions_too_small", field: "image",
            make: BadUpload.form {
                try $0.addFile("image", path: try TestSupport.png(width: 16, height: 16))
                try $0.addFile("audio", path: try TestSupport.wav())
            }),
        BadUpload(
            name: "wide image", status: .unprocessableContent, code: "image_dimensions_too_large", field: "image",
            limits: UploadLimits(maxImageWidth: 80),
            make: BadUpload.form {
                try $0.addFile("image", path: try TestSupport.png(width: 96, height: 96))
                try $0.addFile("audio", path: try TestSupport.wav())
            }),
        BadUpload(
            name: "large image file", status: .contentTooLarge, code: "image_too_large", field: "image",
            limits: UploadLimits(maxImageBytes: 100),
            make: BadUpload.form {
                try $0.addFile("image", path: try TestSupport.png())
                try $0.addFile("audio", path: try TestSupport.wav())
            }),
        BadUpload(
            name: "large audio file", status: .contentTooLarge, code: "audio_too_large", field: "audio",
            limits: UploadLimits(maxAudioBytes: 1000),
            make: BadUpload.form {
                try $0.addFile("image", path: try TestSupport.png())
                try $0.addFile("audio", path: try TestSupport.wav())
            }),
        BadUpload(
            name: "large request", status: .contentTooLarge, code: "request_too_large", field: nil,
            limits: UploadLimits(maxImageBytes: 1000, maxAudioBytes: 1000, requestOverheadBytes: 100),
            make: BadUpload.form {
                try $0.addFile("audio", path: try TestSupport.wav())
                try $0.addFile("image", path: try TestSupport.png())
            }),
        BadUpload(
            name: "corrupt WAV", status: .unprocessableContent, code: "invalid_audio", field: "audio",
            make: BadUpload.form {
                try $0.addFile("image", path: try TestSupport.png())
                var wav = Data("RIFF".utf8) + Data([0x24, 0, 0, 0]) + Data("WAVEfmt ".utf8)
                wav += Data(repeating: 0xFF, count: 200)
                $0.addFile("audio", filename: "a.wav", contentType: "audio/wav", data: wav)
            }),
        BadUpload(
            name: "short audio", status: .unprocessableContent, code: "audio_too_short", field: "audio",
            make: BadUpload.form {
                try $0.addFile("image", path: try TestSupport.png())
                try $0.addFile("audio", path: try TestSupport.wav(seconds: 0.2))
            }),
        BadUpload(
            name: "long audio", status: .unprocessableContent, code: "audio_too_long", field: "audio",
            limits: UploadLimits(maxAudioSeconds: 0.6),
            make: BadUpload.form {
                try $0.addFile("image", path: try TestSupport.png())
                try $0.addFile("audio", path: try TestSupport.wav())
            }),
    ]

    @Test(arguments: badUploads)
    func badUploadsGetTheirErrorCode(_ upload: BadUpload) async throws {
        try await withApp(limits: upload.limits) { service, client in
            let (headers, body) = try upload.make()
            let response = try await client.execute(uri: "/api/generate", method: .post, headers: headers, body: body)
            #expect(response.status == upload.status)
            #expect(response.errorCode == upload.code)
            #expect(response.errorField == upload.field)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            expectConforms(response, "POST", "/api/generate")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: service.configuration.uploadsDirectory)
            #expect(leftovers.isEmpty, "uploads left behind: \(leftovers)")
        }
    }

    @Test func aFullQueueAnswers429WithRetryAfter() async throws {
        try await withApp(settings: ["max-queue-size": "1"]) { _, client in
            _ = try await submitValid(client)
            let response = try await submit(client, try .valid())
            #expect(response.status == .tooManyRequests)
            #expect(response.errorCode == "queue_full")
            let retryAfter = try #require(response.headers[.retryAfter].flatMap { Int($0) })
            #expect(retryAfter >= 5)
            expectConforms(response, "POST", "/api/generate")
        }
    }

    @Test func aDrainingServerRefusesNewJobs() async throws {
        try await withApp { service, client in
            service.worker.beginDraining()
            let response = try await submit(client, try .valid())
            #expect(response.status == .serviceUnavailable)
            #expect(response.errorCode == "shutting_down")
            expectConforms(response, "POST", "/api/generate")
        }
    }

    // MARK: - Status, queue, history

    @Test func statusShowsTheSeedFieldsAndExtensions() async throws {
        try await withApp { _, client in
            let first = try await submitValid(client)
            let second = try await submitValid(client)
            for path in ["/api/status/\(second)", "/api/requests/\(second)"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .ok)
                expectConforms(
                    response, "GET",
                    path.hasPrefix("/api/status") ? "/api/status/{request_id}" : "/api/requests/{request_id}")
                let json = response.json
                #expect(json["request_id"] == .string(second))
                #expect(json["status"] == .string("queued"))
                #expect(json["position_in_queue"] == .integer(2))
                #expect(json["result_url"] == .null)
                #expect(json["estimated_time"]?.stringValue != nil)
                // Two seconds of audio-equivalent work (one ahead, its own) at the preview's prior rate
                #expect((json["estimated_seconds"]?.doubleValue ?? 0) > 0)
            }
            let firstStatus = try await client.execute(uri: "/api/status/\(first)", method: .get)
            #expect(firstStatus.json["position_in_queue"] == .integer(1))
        }
    }

    @Test func anUnknownPathIsAJSONNotFound() async throws {
        try await withApp { _, client in
            for path in ["/api/nothing", "/api/result/", "/api/status/a/b", "/no-such-page.html"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .notFound, "\(path)")
                #expect(response.errorCode == "not_found", "\(path)")
            }
        }
    }

    @Test func aPlainGetOfTheWebSocketIs426() async throws {
        try await withApp { _, client in
            let response = try await client.execute(uri: "/ws", method: .get)
            #expect(response.status == .upgradeRequired)
            #expect(response.errorCode == "upgrade_required")
            #expect(response.headers[.upgrade] == "websocket")
            expectConforms(response, "GET", "/ws")
        }
    }

    @Test func aWrongMethodIs405WithTheMethodsAllowed() async throws {
        try await withApp { _, client in
            let put = try await client.execute(uri: "/api/generate", method: .put)
            #expect(put.status == .methodNotAllowed)
            #expect(put.errorCode == "method_not_allowed")
            #expect(put.headers[.allow] == "POST")
            let post = try await client.execute(uri: "/api/requests/some-id", method: .post)
            #expect(post.status == .methodNotAllowed)
            #expect(post.headers[.allow] == "DELETE, GET, HEAD")
        }
    }

    @Test func everyGetRouteAnswersHead() async throws {
        try await withApp { _, client in
            for path in ["/healthz", "/api/queue", "/api/config", "/openapi.json"] {
                let head = try await client.execute(uri: path, method: .head)
                #expect(head.status == .ok, "\(path)")
                #expect(head.body.readableBytes == 0, "\(path)")
                #expect(head.headers[.contentType] != nil, "\(path)")
            }
        }
    }

    @Test func anUnknownRequestIsNotFound() async throws {
        try await withApp { _, client in
            for path in ["/api/status/nope", "/api/requests/nope", "/api/result/nope"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .notFound)
                #expect(response.errorCode == "not_found")
            }
            let response = try await client.execute(uri: "/api/status/nope", method: .get)
            expectConforms(response, "GET", "/api/status/{request_id}")
        }
    }

    @Test func theQueueListsQueuedRequestsInOrder() async throws {
        try await withApp(settings: ["max-concurrent": "3"]) { _, client in
            let ids = [try await submitValid(client), try await submitValid(client)]
            let response = try await client.execute(uri: "/api/queue", method: .get)
            #expect(response.status == .ok)
            expectConforms(response, "GET", "/api/queue")
            let json = response.json
            #expect(json["queue_size"] == .integer(2))
            #expect(json["processing_count"] == .integer(0))
            #expect(json["max_queue_size"] == .integer(20))
            #expect(json["max_concurrent"] == .integer(3))
            #expect(json["requests"]?.arrayValue?.compactMap { $0["request_id"]?.stringValue } == ids)
        }
    }

    @Test func historyIsPagedAndFiltered() async throws {
        try await withApp { _, client in
            let ids = [try await submitValid(client), try await submitValid(client), try await submitValid(client)]
            _ = try await client.execute(uri: "/api/requests/\(ids[0])", method: .delete)
            let page = try await client.execute(uri: "/api/requests?limit=2&offset=0", method: .get)
            #expect(page.status == .ok)
            expectConforms(page, "GET", "/api/requests")
            #expect(page.json["total"] == .integer(3))
            #expect(page.json["limit"] == .integer(2))
            #expect(
                page.json["requests"]?.arrayValue?.compactMap { $0["request_id"]?.stringValue } == [ids[2], ids[1]])
            let cancelled = try await client.execute(uri: "/api/requests?status=cancelled", method: .get)
            #expect(cancelled.json["requests"]?.arrayValue?.compactMap { $0["request_id"]?.stringValue } == [ids[0]])
            // An empty value is the same as leaving it out (documented), even a huge offset is only past the end
            for query in ["status=", "limit=&offset=", "offset=9223372036854775807"] {
                let page = try await client.execute(uri: "/api/requests?\(query)", method: .get)
                #expect(page.status == .ok, "\(query)")
                expectConforms(page, "GET", "/api/requests")
            }
            for query in [
                "limit=0", "limit=201", "offset=-1", "status=bogus", "limit=ten", "offset=9223372036854775808",
            ] {
                let bad = try await client.execute(uri: "/api/requests?\(query)", method: .get)
                #expect(bad.status == .unprocessableContent, "\(query)")
                #expect(bad.errorCode == "invalid_parameter")
                expectConforms(bad, "GET", "/api/requests")
            }
        }
    }

    // MARK: - Cancel

    @Test func cancellingWorksByDeleteAndByPostAndOnlyOnce() async throws {
        try await withApp { _, client in
            let first = try await submitValid(client)
            let second = try await submitValid(client)
            let deleted = try await client.execute(uri: "/api/requests/\(first)", method: .delete)
            #expect(deleted.status == .ok)
            expectConforms(deleted, "DELETE", "/api/requests/{request_id}")
            #expect(deleted.json["status"] == .string("cancelled"))
            #expect(deleted.json["error"]?["code"] == .string("cancelled"))
            let posted = try await client.execute(uri: "/api/cancel/\(second)", method: .post)
            #expect(posted.status == .ok)
            expectConforms(posted, "POST", "/api/cancel/{request_id}")
            let again = try await client.execute(uri: "/api/cancel/\(second)", method: .post)
            #expect(again.status == .conflict)
            #expect(again.errorCode == "already_finished")
            expectConforms(again, "POST", "/api/cancel/{request_id}")
            let unknown = try await client.execute(uri: "/api/requests/nope", method: .delete)
            #expect(unknown.status == .notFound)
            expectConforms(unknown, "DELETE", "/api/requests/{request_id}")
        }
    }

    // MARK: - GET /api/result

    /// A completed job whose result holds bytes 0, 1, ..., 255, 0, 1, ... (`size` of them).
    private func makeCompletedJob(_ service: InfiniteTalkService, size: Int = 1000) async throws -> String {
        let files = JobFiles(
            uploadsDirectory: service.configuration.uploadsDirectory,
            resultsDirectory: service.configuration.resultsDirectory)
        let job = try await TestSupport.enqueueJob(service.queue, files: files)
        _ = try await service.repository.claimNextJob()
        let bytes = Data((0..<size).map { UInt8($0 % 256) })
        _ = FileManager.default.createFile(atPath: files.resultPath(for: job.id), contents: bytes)
        let output = JobOutput(
            durationSeconds: 1, frames: 25, width: 64, height: 64, fps: 25, bytes: size, warnings: [])
        _ = try await service.repository.complete(job.id, output: output)
        return job.id
    }

    @Test func theResultDownloadsWithItsHeaders() async throws {
        try await withApp { service, client in
            let id = try await makeCompletedJob(service)
            let response = try await client.execute(uri: "/api/result/\(id)", method: .get)
            #expect(response.status == .ok)
            expectConforms(response, "GET", "/api/result/{request_id}")
            #expect(response.body.readableBytes == 1000)
            #expect(response.headers[.contentType] == "video/mp4")
            #expect(response.headers[.acceptRanges] == "bytes")
            #expect(response.headers[.contentDisposition] == "attachment; filename=\"infinitetalk-\(id).mp4\"")
            #expect(response.headers[.eTag] != nil)
            let status = try await client.execute(uri: "/api/status/\(id)", method: .get)
            #expect(status.json["result_url"] == .string("/api/result/\(id)"))
            #expect(status.json["result"]?["bytes"] == .integer(1000))
            expectConforms(status, "GET", "/api/status/{request_id}")
        }
    }

    @Test(arguments: [
        ("bytes=0-9", 0, 9), ("bytes=-100", 900, 999), ("bytes=100-", 100, 999), ("bytes=990-5000", 990, 999),
    ])
    func rangesGetPartialContent(range: String, first: Int, last: Int) async throws {
        try await withApp { service, client in
            let id = try await makeCompletedJob(service)
            var headers = HTTPFields()
            headers[.range] = range
            let response = try await client.execute(uri: "/api/result/\(id)", method: .get, headers: headers)
            #expect(response.status == .partialContent)
            #expect(response.headers[.contentRange] == "bytes \(first)-\(last)/1000")
            let body = response.body
            #expect(Array(body.readableBytesView) == (first...last).map { UInt8($0 % 256) })
            expectConforms(response, "GET", "/api/result/{request_id}")
        }
    }

    @Test func anUnsatisfiableRangeGets416() async throws {
        try await withApp { service, client in
            let id = try await makeCompletedJob(service)
            var headers = HTTPFields()
            headers[.range] = "bytes=5000-"
            let response = try await client.execute(uri: "/api/result/\(id)", method: .get, headers: headers)
            #expect(response.status == .rangeNotSatisfiable)
            #expect(response.headers[.contentRange] == "bytes */1000")
            expectConforms(response, "GET", "/api/result/{request_id}")
        }
    }

    @Test func headAndIfNoneMatchSendNoBody() async throws {
        try await withApp { service, client in
            let id = try await makeCompletedJob(service)
            let head = try await client.execute(uri: "/api/result/\(id)", method: .head)
            #expect(head.status == .ok)
            #expect(head.headers[.contentLength] == "1000")
            #expect(head.body.readableBytes == 0)
            let eTag = try #require(head.headers[.eTag])
            var headers = HTTPFields()
            headers[.ifNoneMatch] = eTag
            let cached = try await client.execute(uri: "/api/result/\(id)", method: .get, headers: headers)
            #expect(cached.status == .notModified)
            #expect(cached.body.readableBytes == 0)
            expectConforms(cached, "GET", "/api/result/{request_id}")
        }
    }

    @Test func anUnfinishedResultIsNotReady() async throws {
        try await withApp { _, client in
            let id = try await submitValid(client)
            let response = try await client.execute(uri: "/api/result/\(id)", method: .get)
            #expect(response.status == .conflict)
            #expect(response.errorCode == "not_ready")
            expectConforms(response, "GET", "/api/result/{request_id}")
        }
    }

    @Test func anExpiredResultIsGone() async throws {
        try await withApp(settings: ["retention": "60s"]) { service, client in
            // Given a result that finished two minutes ago
            let id = try await makeCompletedJob(service)
            // When the retention sweep runs
            #expect(await service.sweepExpiredResults(now: Date(timeIntervalSinceNow: 120)) == 1)
            // Then the file is gone and the download says so
            let response = try await client.execute(uri: "/api/result/\(id)", method: .get)
            #expect(response.status == .gone)
            #expect(response.errorCode == "result_expired")
            expectConforms(response, "GET", "/api/result/{request_id}")
            let status = try await client.execute(uri: "/api/status/\(id)", method: .get)
            #expect(status.json["status"] == .string("completed"))
        }
    }

    @Test func theSweepDeletesOrphanUploadsButNotThoseOfWaitingJobs() async throws {
        try await withApp(settings: ["retention": "3600s"]) { service, client in
            let waiting = try await submitValid(client)
            let orphan = (service.configuration.uploadsDirectory as NSString).appendingPathComponent("left-by-a-crash")
            try FileManager.default.createDirectory(atPath: orphan, withIntermediateDirectories: true)
            // Two hours later
            await service.sweepExpiredResults(now: Date(timeIntervalSinceNow: 7200))
            #expect(!FileManager.default.fileExists(atPath: orphan))
            let kept = (service.configuration.uploadsDirectory as NSString).appendingPathComponent(waiting)
            #expect(FileManager.default.fileExists(atPath: kept))
        }
    }

    @Test func aFreshResultSurvivesTheSweep() async throws {
        try await withApp(settings: ["retention": "3600s"]) { service, client in
            let id = try await makeCompletedJob(service)
            #expect(await service.sweepExpiredResults() == 0)
            let response = try await client.execute(uri: "/api/result/\(id)", method: .get)
            #expect(response.status == .ok)
        }
    }

    // MARK: - System endpoints

    @Test func configurationTellsClientsTheLimits() async throws {
        let settings = [
            "max-queue-size": "7", "max-image-bytes": "1234", "max-steps": "20", "max-prompt-length": "100",
        ]
        try await withApp(settings: settings) { _, client in
            let response = try await client.execute(uri: "/api/config", method: .get)
            #expect(response.status == .ok)
            expectConforms(response, "GET", "/api/config")
            #expect(response.json["limits"]?["max_queue_size"] == .integer(7))
            #expect(response.json["limits"]?["max_image_bytes"] == .integer(1234))
            #expect(response.json["fps"] == .integer(25))
            #expect(response.json["engine"]?["ready"] == .bool(false))
            // The engine's parameter schema, in its order, with the service's limits
            let parameters = try #require(response.json["parameters"]?.arrayValue)
            #expect(parameters.prefix(4).map { $0["name"]?.stringValue } == ["resolution", "steps", "seed", "prompt"])
            let steps = try #require(parameters.first { $0["name"] == .string("steps") })
            #expect(steps["maximum"]?.doubleValue == 20)
            #expect(steps["default"] == .integer(4))
            let prompt = try #require(parameters.first { $0["name"] == .string("prompt") })
            #expect(prompt["max_length"] == .integer(100))
            // and the older fields, derived from it
            #expect(response.json["steps"]?["max"] == .integer(20))
            #expect(response.json["resolutions"] == .array([.string("480p"), .string("720p")]))
            #expect(response.json["defaults"]?["resolution"] == .string("480p"))
        }
    }

    @Test func healthIsAlwaysOkReadinessWaitsForTheEngine() async throws {
        try await withApp { _, client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            expectConforms(health, "GET", "/healthz")
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .serviceUnavailable)
            #expect(ready.json["status"] == .string("starting"))
            expectConforms(ready, "GET", "/readyz")
        }
    }

    @Test func readinessTurnsReadyWithTheEngine() async throws {
        try await withApp(engine: TestSupport.fakeEngineCommand(["--max-jobs", "2"])) { service, client in
            try await TestSupport.waitUntilReady(service.engine)
            let ready = try await client.execute(uri: "/readyz", method: .get)
            #expect(ready.status == .ok)
            expectConforms(ready, "GET", "/readyz")
            #expect(ready.json["engine"]?["name"] == .string("fake"))
            let config = try await client.execute(uri: "/api/config", method: .get)
            #expect(config.json["max_concurrent"] == .integer(2))
        }
    }

    @Test func metricsAreInPrometheusFormat() async throws {
        try await withApp { _, client in
            _ = try await submitValid(client)
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            let text = String(buffer: response.body)
            for name in [
                "infinitetalk_queue_depth 1", "infinitetalk_jobs_processing",
                #"infinitetalk_jobs_total{status="queued"} 1"#,
                "infinitetalk_job_seconds", "infinitetalk_engine_restarts_total",
                #"infinitetalk_upload_bytes_total{kind="image"}"#,
            ] {
                #expect(text.contains(name), "missing \(name)")
            }
        }
    }

    @Test func theOpenAPIDocumentDescribesEveryRoute() async throws {
        try await withApp { _, client in
            let response = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(response.status == .ok)
            let json = response.json
            #expect(json["openapi"] == .string("3.1.0"))
            let paths = Set(json["paths"]?.objectValue?.keys.map { $0 } ?? [])
            for path in [
                "/api/generate", "/api/status/{request_id}", "/api/queue", "/api/result/{request_id}", "/ws",
                "/api/requests", "/api/requests/{request_id}", "/api/cancel/{request_id}", "/api/config",
                "/healthz", "/readyz", "/metrics", "/openapi.json", "/",
            ] {
                #expect(paths.contains(path), "\(path) undocumented")
            }
            for message in ["QueueUpdate", "StatusUpdate", "ProgressUpdate", "Ping", "Pong"] {
                #expect(json["components"]?["schemas"]?[message] != nil)
            }
        }
    }

    @Test func theWebPageIsServedAtTheRoot() async throws {
        let web = TestSupport.makeTemporaryDirectory("itk-web")
        try "<!doctype html><title>InfiniteTalk</title>".write(
            toFile: web + "/index.html", atomically: true, encoding: .utf8)
        try await withApp(settings: ["web-dir": web]) { _, client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
            #expect(String(buffer: response.body).contains("InfiniteTalk"))
            #expect(response.headers[.contentType]?.hasPrefix("text/html") == true)
        }
    }
}
