import Foundation
import Hummingbird
import Logging
import Uploads

/// Batches: many videos from one request (one portrait and several recordings, or pairs), accepted all or nothing,
/// followed, cancelled and downloaded (a streamed ZIP) as one.
///
/// Form: `audio` repeated (one part per video, in order), and either one `image` for all of them or one `image`
/// part per `audio` (paired in order); the option fields (and `webhook_url`) apply to every job.
struct BatchController<Context: CallerContext>: Sendable {
    let jobs: JobController<Context>

    private var queue: JobQueue { jobs.queue }
    private var files: JobFiles { jobs.files }
    private var configuration: ServiceConfiguration { jobs.configuration }

    func addRoutes(to router: Router<Context>) {
        router.post("/api/batches", use: create)
        router.getAndHead("/api/batches/:id", use: status)
        router.delete("/api/batches/:id", use: cancel)
        router.get("/api/batches/:id/results.zip", use: results)
    }

    // MARK: - POST /api/batches

    @Sendable func create(request: Request, context: Context) async throws -> JSONResponse<BatchSubmitResponse> {
        let caller = context.caller
        let batchID = UUID().uuidString.lowercased()
        let folder = files.uploadFolder(for: batchID)
        var jobIDs: [String] = []
        defer { files.removeUploads(of: batchID) }
        do {
            let maxQueued = jobs.limits.maxQueued(for: caller)
            try await queue.checkAcceptingJobs(owner: caller.ownerID, maxQueuedForOwner: maxQueued)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let (images, audios, fields) = try await receive(request, into: folder)
            try await queue.checkAcceptingJobs(
                owner: caller.ownerID, count: audios.count, maxQueuedForOwner: maxQueued)

            // Every file and option is checked before anything is kept.
            let validator = UploadValidator(limits: configuration.uploadLimits, ffmpegPath: configuration.ffmpegPath)
            for image in images { _ = try validator.validateImage(at: image.path, field: image.field) }
            var seconds: [Double] = []
            for audio in audios {
                seconds.append(try await validator.validateAudio(at: audio.path, field: audio.field).durationSeconds)
            }
            let schema = try await queue.engine.parameterSchema(configuration: configuration)
            let parameters = try schema.parse(fields: fields, uploads: ["image", "audio"])
            let webhook = try jobs.webhookRequest(fields: fields, caller: caller)
            try jobs.limits.takeSubmit(for: caller, count: audios.count)

            // Each job gets its own upload folder, as a single submit's (the shared portrait is hard-linked).
            var batch: [Job] = []
            for (index, audio) in audios.enumerated() {
                let id = UUID().uuidString.lowercased()
                jobIDs.append(id)
                let image = images.count == 1 ? images[0] : images[index]
                let jobFolder = files.uploadFolder(for: id)
                try FileManager.default.createDirectory(atPath: jobFolder, withIntermediateDirectories: true)
                let imagePath = (jobFolder as NSString).appendingPathComponent("image")
                let audioPath = (jobFolder as NSString).appendingPathComponent("audio")
                try Self.linkOrCopy(image.path, to: imagePath)
                try FileManager.default.moveItem(atPath: audio.path, toPath: audioPath)
                batch.append(
                    Job(
                        id: id, parameters: parameters, imagePath: imagePath, audioPath: audioPath,
                        audioSeconds: seconds[index], resultPath: files.resultPath(for: id), owner: caller.ownerID,
                        webhookURL: webhook.url, webhookProgress: webhook.progress, batchId: batchID))
            }
            for image in images { queue.metrics.countUpload(kind: "image", bytes: image.byteCount) }
            for audio in audios { queue.metrics.countUpload(kind: "audio", bytes: audio.byteCount) }
            let stored = try await queue.submitAll(batch, maxQueuedForOwner: maxQueued)
            jobs.logger.info("batch \(batchID) queued: \(stored.count) jobs")
            return JSONResponse(
                BatchSubmitResponse(
                    batchId: batchID, status: "queued", requestIds: stored.map(\.job.id),
                    requests: stored.map { SubmitResponse(stored: $0.job, position: $0.position) }))
        } catch {
            for id in jobIDs { files.removeUploads(of: id) }
            throw JobController<Context>.apiError(from: error)
        }
    }

    /// Streams the body to `folder`: the `image` parts and the `audio` parts, in order, and the text fields.
    private func receive(_ request: Request, into folder: String) async throws -> (
        images: [ReceivedFile], audios: [ReceivedFile], fields: [String: String]
    ) {
        let most = configuration.maxBatchSize
        let image = FileField("image", kind: .image, maxCount: most)
        let audio = FileField("audio", kind: .audio, maxCount: most)
        let upload = try await jobs.receiveUpload(request, into: folder, fileFields: [image, audio])
        let images = (1...most).compactMap { upload.files[image.key(occurrence: $0)] }
        let audios = (1...most).compactMap { upload.files[audio.key(occurrence: $0)] }
        guard images.count == 1 || images.count == audios.count else {
            throw APIError.invalidParameter(
                "image",
                "Send one image for every audio, or \(audios.count) images (one per audio, in order); got \(images.count)."
            )
        }
        return (images, audios, upload.fields)
    }

    private static func linkOrCopy(_ source: String, to destination: String) throws {
        do {
            try FileManager.default.linkItem(atPath: source, toPath: destination)
        } catch {
            try FileManager.default.copyItem(atPath: source, toPath: destination)
        }
    }

    // MARK: - Reading, cancelling, downloading

    /// The batch's jobs as `caller` may see them: another key's batch is unknown (404), like a missing one.
    private func visibleJobs(_ context: Context) async throws -> (id: String, jobs: [Job]) {
        let id = try context.parameters.require("id").lowercased()
        let batch = try await queue.repository.jobs(inBatch: id)
        guard let first = batch.first, context.caller.canSee(first) else {
            throw APIError(.notFound, code: "not_found", message: "No batch \(id).")
        }
        return (id, batch)
    }

    @Sendable func status(request: Request, context: Context) async throws -> JSONResponse<BatchStatusResponse> {
        let (id, batch) = try await visibleJobs(context)
        return JSONResponse(try await statusResponse(id, batch))
    }

    private func statusResponse(_ id: String, _ batch: [Job]) async throws -> BatchStatusResponse {
        BatchStatusResponse(batchID: id, statuses: try await queue.statuses(of: batch))
    }

    /// Cancels every job of the batch that has not finished; 200 with the batch's status.
    @Sendable func cancel(request: Request, context: Context) async throws -> JSONResponse<BatchStatusResponse> {
        let (id, batch) = try await visibleJobs(context)
        for job in batch where !job.status.isTerminal { _ = try await queue.cancel(job.id) }
        return JSONResponse(try await statusResponse(id, try await queue.repository.jobs(inBatch: id)))
    }

    /// The finished videos as one ZIP (`<n>-<request_id>.mp4`, n in submission order), streamed.
    @Sendable func results(request: Request, context: Context) async throws -> Response {
        let (id, batch) = try await visibleJobs(context)
        let finished = batch.enumerated().filter { $0.element.status == .completed && $0.element.expiredAt == nil }
        guard !finished.isEmpty else {
            throw APIError(
                .conflict, code: "not_ready", message: "No video of this batch is finished yet (or kept any more).")
        }
        let archive: ZipStream
        do {
            archive = try ZipStream(
                files: finished.map {
                    (name: "\($0.offset + 1)-\($0.element.id).mp4", path: files.resultPath(for: $0.element.id))
                })
        } catch is ZipStream.TooLarge {
            throw APIError(
                .contentTooLarge, code: "archive_too_large",
                message: "The batch's videos add up to more than 4 GiB; download them one by one.")
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/zip"
        headers[.contentDisposition] = "attachment; filename=\"infinitetalk-batch-\(id).zip\""
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody(contentLength: archive.byteCount) { writer in
                try await archive.write { try await writer.write($0) }
                try await writer.finish(nil)
            })
    }
}
