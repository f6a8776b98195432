import Foundation
import Hummingbird
import Logging
import Uploads

/// Submitting, inspecting, listing and cancelling jobs.
struct JobController<Context: RequestContext>: Sendable {
    let queue: JobQueue
    let files: JobFiles
    let configuration: ServiceConfiguration
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

    @Sendable func generate(request: Request, context: Context) async throws -> JSONResponse<SubmitResponse> {
        let id = UUID().uuidString.lowercased()
        let folder = files.uploadFolder(for: id)
        do {
            // Refuse before reading a large body when draining, when the queue is already full, or the disk nearly.
            try await queue.checkAcceptingJobs()
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let (stored, position) = try await queue.submit(
                try await receiveJob(id: id, folder: folder, request: request))
            logger.info("job \(id) queued (\(String(format: "%.1f", stored.audioSeconds)) s of audio)")
            return JSONResponse(
                SubmitResponse(
                    requestId: id, status: stored.status, message: stored.message,
                    timestamp: stored.createdAt, positionInQueue: position,
                    params: stored.parameters))
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

    /// Streams the upload to disk, checks the media and options, and builds the job (not stored yet).
    private func receiveJob(id: String, folder: String, request: Request) async throws -> Job {
        let schema = try await queue.engine.parameterSchema(configuration: configuration)
        let limits = configuration.uploadLimits
        var receiver = try MultipartReceiver(
            contentType: request.headers[.contentType], directory: folder, limits: limits)
        receiver.beforeWriting = { [watermark = queue.diskWatermark] bytes in try watermark.checkRoom(writing: bytes) }
        try receiver.checkContentLength(request.headers[.contentLength].flatMap { Int($0) })
        let upload = try await receiver.receive(request.body)
        guard let imageFile = upload.files["image"], let audioFile = upload.files["audio"] else {
            throw UploadError.missingFile(
                upload.files["image"] == nil ? .image : .audio,
                field: upload.files["image"] == nil ? "image" : "audio")
        }
        let validator = UploadValidator(limits: limits, ffmpegPath: configuration.ffmpegPath)
        _ = try validator.validateImage(at: imageFile.path)
        var audioSeconds = try await validator.validateAudio(at: audioFile.path).durationSeconds
        let parameters = try schema.parse(fields: upload.fields, uploads: Set(upload.files.keys))
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
        return Job(
            id: id, parameters: parameters, imagePath: imageFile.path, audioPath: audioFile.path,
            audio2Path: secondAudio?.path, audioSeconds: audioSeconds, resultPath: files.resultPath(for: id))
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
        guard let status = try await queue.status(ofJobWithID: id.lowercased()) else { throw APIError.notFound(id) }
        return EncodedJSONResponse(json: try statusJSON.json(for: status))
    }

    @Sendable func queueSnapshot(request: Request, context: Context) async throws -> JSONResponse<QueueResponse> {
        JSONResponse(try await queue.queueResponse())
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
        let page = try await queue.page(status: status, limit: limit, offset: offset)
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
