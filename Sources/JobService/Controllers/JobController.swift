import Foundation
import Hummingbird
import Logging
import Uploads

/// Submitting, inspecting, listing and cancelling jobs.
struct JobController<Context: CallerContext>: Sendable {
    let queue: JobQueue
    let files: JobFiles
    let configuration: ServiceConfiguration
    let limits: KeyLimits
    let idempotent: IdempotentSubmits
    let webhookPolicy: WebhookAddressPolicy
    let webhooks: WebhookOutbox
    let logger: Logger
    let statusJSON = StatusJSONCache()

    func addRoutes(to router: Router<Context>) {
        router.post("/api/generate", use: generate)
        router.getAndHead("/api/status/:id", use: status)
        router.getAndHead("/api/requests/:id", use: status)
        router.getAndHead("/api/queue", use: queueSnapshot)
        router.getAndHead("/api/requests", use: list)
        router.delete("/api/requests/:id", use: cancel)
        router.post("/api/cancel/:id", use: cancel)
    }

    // MARK: - POST /api/generate

    @Sendable func generate(request: Request, context: Context) async throws -> Response {
        let caller = context.caller
        let idempotencyKey = try request.headers[IdempotentSubmits.headerName].map(IdempotentSubmits.validate)
        let id = UUID().uuidString.lowercased()
        let folder = files.uploadFolder(for: id)
        do {
            // A retry of a submit already answered skips the limits: it creates nothing.
            var isRetry = false
            if let idempotencyKey { isRetry = try await idempotent.knows(owner: caller.ownerID, key: idempotencyKey) }
            let maxQueued = limits.maxQueued(for: caller)
            if !isRetry {
                // Refuse before reading a large body when draining, when the queue (or the key's share of it) is
                // already full, or the disk nearly; then take one submit from the key's rate.
                try await queue.checkAcceptingJobs(owner: caller.ownerID, maxQueuedForOwner: maxQueued)
                try limits.takeSubmit(for: caller)
            }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let received = try await receiveJob(
                id: id, folder: folder, request: request, caller: caller,
                fingerprinted: idempotencyKey != nil)
            let submit = { () async throws -> (jobID: String, json: String) in
                let (stored, position) = try await queue.submit(received.job, maxQueuedForOwner: maxQueued)
                logger.info("job \(id) queued (\(String(format: "%.1f", stored.audioSeconds)) s of audio)")
                return (id, try APIJSON.encodeString(SubmitResponse(stored: stored, position: position)))
            }
            guard let idempotencyKey, let fingerprint = received.fingerprint else {
                return Self.jsonResponse(try await submit().json)
            }
            let answer = try await idempotent.answer(
                owner: caller.ownerID, key: idempotencyKey, fingerprint: fingerprint, submit: submit)
            if answer.replayed {
                files.removeUploads(of: id)
                logger.info("replayed the answer of an earlier submit (Idempotency-Key)")
            }
            return Self.jsonResponse(answer.json, replayed: answer.replayed)
        } catch {
            files.removeUploads(of: id)
            let answer = Self.apiError(from: error)
            if (answer as? APIError)?.status.code == 507 {
                let reason = queue.diskWatermark.shortage() ?? "the disk is full"
                logger.warning("upload refused with 507 insufficient_storage: \(reason) (\(error))")
            }
            throw answer
        }
    }

    /// Streams `request`'s multipart body into `folder` (the parts of `fileFields` as files), refusing a declared
    /// length above the caps at once and stopping when the disk reaches the low-disk watermark.
    func receiveUpload(_ request: Request, into folder: String, fileFields: [FileField] = FileField.generateFields)
        async throws -> ReceivedUpload
    {
        var receiver = try MultipartReceiver(
            contentType: request.headers[.contentType], directory: folder, limits: configuration.uploadLimits,
            fileFields: fileFields)
        receiver.beforeWriting = { [watermark = queue.diskWatermark] bytes in try watermark.checkRoom(writing: bytes) }
        try receiver.checkContentLength(request.headers[.contentLength].flatMap { Int($0) })
        return try await receiver.receive(request.body)
    }

    /// 200 with `json`; a replayed answer says so in `Idempotent-Replayed: true`.
    private static func jsonResponse(_ json: String, replayed: Bool = false) -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if replayed { headers[IdempotentSubmits.replayedHeaderName] = "true" }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    /// Streams the upload to disk, checks the media and options, and builds the job (not stored yet).
    /// - Parameter fingerprinted: also compute the content's `UploadFingerprint` (for `Idempotency-Key`).
    private func receiveJob(id: String, folder: String, request: Request, caller: Caller, fingerprinted: Bool)
        async throws -> (job: Job, fingerprint: String?)
    {
        let schema = try await queue.engine.parameterSchema(configuration: configuration)
        let limits = configuration.uploadLimits
        let upload = try await receiveUpload(request, into: folder)
        guard let imageFile = upload.files["image"], let audioFile = upload.files["audio"] else {
            throw UploadError.missingFile(
                upload.files["image"] == nil ? .image : .audio,
                field: upload.files["image"] == nil ? "image" : "audio")
        }
        let validator = UploadValidator(limits: limits, ffmpegPath: configuration.ffmpegPath)
        _ = try validator.validateImage(at: imageFile.path)
        var audioSeconds = try await validator.validateAudio(at: audioFile.path).durationSeconds
        let parameters = try schema.parse(fields: upload.fields, uploads: Set(upload.files.keys))
        let webhook = try webhookRequest(fields: upload.fields, caller: caller)
        let secondAudio = upload.files["audio2"]
        if let secondAudio {
            try checkEngineTakesTwoSpeakers(schema)
            // The two tracks play side by side: the video lasts as long as the longer one.
            audioSeconds = max(
                audioSeconds, try await validator.validateAudio(at: secondAudio.path, field: "audio2").durationSeconds)
        }
        // Boxes are not checked against the header's size: the engine applies the EXIF orientation first, and clips.
        queue.metrics.countUpload(kind: "image", bytes: imageFile.byteCount)
        for file in [audioFile, secondAudio].compactMap({ $0 }) {
            queue.metrics.countUpload(kind: "audio", bytes: file.byteCount)
        }
        let job = Job(
            id: id, parameters: parameters, imagePath: imageFile.path, audioPath: audioFile.path,
            audio2Path: secondAudio?.path, audioSeconds: audioSeconds, resultPath: files.resultPath(for: id),
            owner: caller.ownerID, webhookURL: webhook.url, webhookProgress: webhook.progress)
        let fingerprint =
            fingerprinted
            ? try UploadFingerprint.of(fields: upload.fields, files: upload.files.mapValues(\.path)) : nil
        return (job, fingerprint)
    }

    /// The job's webhook: `webhook_url` (else the key's default) and `webhook_progress` (`true` adds
    /// `job.progress`).
    func webhookRequest(fields: [String: String], caller: Caller) throws -> (url: String?, progress: Bool) {
        func field(_ name: String) -> String? {
            fields[name].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        var defaultURL: String?
        if case .key(let key) = caller { defaultURL = key.webhookURL }
        let url = field("webhook_url") ?? defaultURL
        if let url, let refusal = webhookPolicy.refusalAtSubmit(url) { throw refusal }
        var progress = false
        if let text = field("webhook_progress") {
            switch text.lowercased() {
            case "true", "1", "yes", "on": progress = true
            case "false", "0", "no", "off": progress = false
            default: throw APIError.invalidParameter("webhook_progress", "webhook_progress must be true or false.")
            }
            if progress && url == nil {
                throw APIError.invalidParameter("webhook_progress", "webhook_progress needs webhook_url: send it too.")
            }
        }
        return (url, progress)
    }

    /// A second speaker needs an engine that takes `audio2_path` (the two-speaker adapter, `two_speakers` in its
    /// hello).
    private func checkEngineTakesTwoSpeakers(_ schema: ParameterSchema) throws {
        guard !schema.takesSecondSpeaker else { return }
        throw APIError(
            .unprocessableContent, code: "two_speakers_unsupported",
            message:
                "This engine cannot animate two speakers (audio2): that needs the InfiniteTalk engine with the multi-speaker weights (InfiniteTalk/multi/).",
            field: "audio2")
    }

    /// The answer for a failed submission: upload errors keep their status and code; a full disk anywhere (the
    /// upload folder, the files, the database) is 507 `insufficient_storage`; the rest as it is.
    static func apiError(from error: any Error) -> any Error {
        switch error {
        case let error as UploadError:
            return APIError(
                HTTPResponse.Status(code: error.status), code: error.code, message: error.message,
                field: error.field)
        case let error where isDiskFull(error):
            return apiError(from: UploadError.insufficientStorage)
        default:
            return error
        }
    }

    // MARK: - Reading

    @Sendable func status(request: Request, context: Context) async throws -> EncodedJSONResponse {
        let id = try context.parameters.require("id")
        if !context.caller.seesAllJobs { _ = try await queue.visibleJob(id: id.lowercased(), to: context.caller) }
        guard var status = try await queue.status(ofJobWithID: id.lowercased()) else { throw APIError.notFound(id) }
        status.webhook = try await webhooks.latest(ofJob: status.requestId).map(WebhookDeliveryState.init)
        return EncodedJSONResponse(json: try statusJSON.json(for: status))
    }

    @Sendable func queueSnapshot(request: Request, context: Context) async throws -> JSONResponse<QueueResponse> {
        var response = try await queue.queueResponse()
        if !context.caller.seesAllJobs {
            // Everyone sees the counts; only their own jobs' details.
            let own = Set(try await queue.repository.activeJobs().all.filter(context.caller.canSee).map(\.id))
            response.requests = response.requests.filter { own.contains($0.requestId) }
        }
        return JSONResponse(response)
    }

    @Sendable func list(request: Request, context: Context) async throws -> JSONResponse<RequestListResponse> {
        let query = request.uri.queryParameters
        let limit = try Self.integerQuery(query.get("limit"), name: "limit", range: 1...200) ?? 50
        let offset = try Self.integerQuery(query.get("offset"), name: "offset", range: 0...Int.max) ?? 0
        var status: JobStatus?
        if let text = query.get("status"), !text.isEmpty {
            guard let value = JobStatus(rawValue: text) else {
                throw APIError.invalidParameter(
                    "status", "status must be one of \(JobStatus.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            status = value
        }
        let owner = context.caller.seesAllJobs ? nil : context.caller.ownerID
        let page = try await queue.page(status: status, owner: owner, limit: limit, offset: offset)
        return JSONResponse(
            RequestListResponse(requests: page.statuses, total: page.total, limit: limit, offset: offset))
    }

    private static func integerQuery(_ text: String?, name: String, range: ClosedRange<Int>) throws -> Int? {
        guard let text, !text.isEmpty else { return nil }
        guard let value = Int(text), range.contains(value) else {
            let upper = range.upperBound == Int.max ? "" : "\(range.upperBound)"
            throw APIError.invalidParameter(name, "\(name) must be an integer in \(range.lowerBound)...\(upper).")
        }
        return value
    }

    // MARK: - Cancelling

    @Sendable func cancel(request: Request, context: Context) async throws -> JSONResponse<JobStatusResponse> {
        let id = try context.parameters.require("id").lowercased()
        _ = try await queue.visibleJob(id: id, to: context.caller)
        switch try await queue.cancel(id) {
        case .notFound:
            throw APIError.notFound(id)
        case .alreadyFinished(let job):
            throw APIError(
                .conflict, code: "already_finished", message: "The request is already \(job.status.rawValue).")
        case .cancelled(let job):
            return JSONResponse(try await queue.status(of: job))
        }
    }
}
