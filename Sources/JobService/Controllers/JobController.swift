import Foundation
import Hummingbird
import Logging
import Uploads

/// Submitting, inspecting, listing and cancelling jobs.
struct JobController<Context: RequestContext>: Sendable {
    let repository: JobRepository
    let worker: JobWorker
    let reporter: StatusReporter
    let notifier: JobNotifier
    let files: JobFiles
    let configuration: ServiceConfiguration
    let supervisor: EngineSupervisor
    let metrics: ServiceMetrics
    let shutdownState: ShutdownState
    let wakeUp: WakeUpSignal
    let logger: Logger
    let statusJSON = StatusJSONCache()

    func addRoutes(to router: Router<Context>) {
        router.post("/api/generate", use: generate)
        router.getAndHead("/api/status/:id", use: status)
        router.getAndHead("/api/requests/:id", use: status)
        router.getAndHead("/api/queue", use: queue)
        router.getAndHead("/api/requests", use: list)
        router.delete("/api/requests/:id", use: cancel)
        router.post("/api/cancel/:id", use: cancel)
    }

    // MARK: - POST /api/generate

    @Sendable func generate(request: Request, context: Context) async throws -> JSONResponse<SubmitResponse> {
        guard !shutdownState.isDraining else { throw APIError.shuttingDown }
        // Refuse before reading a large body when the queue is already full.
        try await checkQueueHasRoom()

        let id = UUID().uuidString.lowercased()
        let folder = files.uploadFolder(for: id)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        do {
            let job = try await receiveJob(id: id, folder: folder, request: request)
            let (stored, position): (Job, Int)
            do {
                // Stored and announced in one turn, so `queued` goes out before the worker's `processing`.
                let maxQueueSize = configuration.maxQueueSize
                (stored, position) = try await notifier.enqueued { [repository] in
                    try await repository.enqueue(job, maxQueueSize: maxQueueSize)
                }
            } catch is JobRepository.QueueFull {
                throw try await queueFullError()
            }
            metrics.countJob(.queued)
            logger.info("job \(id) queued (\(String(format: "%.1f", stored.audioSeconds)) s of audio)")
            wakeUp.signal()
            return JSONResponse(
                SubmitResponse(
                    requestId: id, status: stored.status, message: stored.message,
                    timestamp: stored.createdAt, positionInQueue: position,
                    params: stored.parameters))
        } catch {
            files.removeUploads(of: id)
            throw Self.apiError(from: error)
        }
    }

    /// Streams the upload to disk, checks the media and options, and builds the job (not stored yet).
    private func receiveJob(id: String, folder: String, request: Request) async throws -> Job {
        let schema = try await supervisor.parameterSchema(configuration: configuration)
        let limits = configuration.uploadLimits
        let receiver = try MultipartReceiver(
            contentType: request.headers[.contentType], directory: folder, limits: limits)
        try receiver.checkContentLength(request.headers[.contentLength].flatMap { Int($0) })
        let upload = try await receiver.receive(request.body)
        guard let imageFile = upload.files["image"], let audioFile = upload.files["audio"] else {
            throw UploadError.missingFile(
                upload.files["image"] == nil ? .image : .audio,
                field: upload.files["image"] == nil ? "image" : "audio")
        }
        let validator = UploadValidator(limits: limits, ffprobePath: configuration.ffprobePath)
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
        metrics.countUpload(kind: "image", bytes: imageFile.byteCount)
        for file in [audioFile, secondAudio].compactMap({ $0 }) {
            metrics.countUpload(kind: "audio", bytes: file.byteCount)
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

    private func checkQueueHasRoom() async throws {
        let queued = try await repository.countsByStatus()[.queued] ?? 0
        if queued >= configuration.maxQueueSize { throw try await queueFullError() }
    }

    /// 429 `queue_full`, with `Retry-After` set to the expected wait for the first queued job to start.
    private func queueFullError() async throws -> APIError {
        let queue = try await reporter.snapshot()
        let slots = max(1, await worker.capacity())
        let wait = queue.queued.first.flatMap { reporter.estimatedSeconds(for: $0, queue: queue, slots: slots) } ?? 60
        let firstJobSeconds =
            queue.queued.first.map { reporter.estimator.expectedSeconds(forAudio: $0.audioSeconds) } ?? 0
        let retryAfter = Int(min(3600, max(5, wait - firstJobSeconds)).rounded(.up))
        var headers = HTTPFields()
        headers[.retryAfter] = String(retryAfter)
        return APIError(
            .tooManyRequests, code: "queue_full",
            message: "The queue is full (\(configuration.maxQueueSize) requests); try again in about \(retryAfter) s.",
            headers: headers)
    }

    static func apiError(from error: any Error) -> any Error {
        switch error {
        case let error as UploadError:
            return APIError(
                HTTPResponse.Status(code: error.status), code: error.code, message: error.message,
                field: error.field)
        default:
            return error
        }
    }

    // MARK: - Reading

    @Sendable func status(request: Request, context: Context) async throws -> EncodedJSONResponse {
        let id = try context.parameters.require("id")
        guard let status = try await reporter.status(ofJobWithID: id.lowercased()) else { throw APIError.notFound(id) }
        return EncodedJSONResponse(json: try statusJSON.json(for: status))
    }

    @Sendable func queue(request: Request, context: Context) async throws -> JSONResponse<QueueResponse> {
        JSONResponse(try await reporter.queueResponse())
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
        let page = try await repository.list(status: status, limit: limit, offset: offset)
        return JSONResponse(
            RequestListResponse(
                requests: try await reporter.statuses(of: page.jobs), total: page.total,
                limit: limit, offset: offset))
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
        switch try await worker.cancel(id) {
        case .notFound:
            throw APIError.notFound(id)
        case .alreadyFinished(let job):
            throw APIError(
                .conflict, code: "already_finished", message: "The request is already \(job.status.rawValue).")
        case .cancelled(let job):
            return JSONResponse(try await reporter.status(of: job))
        }
    }
}
