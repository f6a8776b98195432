import Foundation
import Hummingbird

/// The live stream of a job, from its first ready clip on, while it runs and after:
/// `GET|HEAD /api/result/{id}/live.m3u8` (the HLS playlist, never cached) and `GET|HEAD /api/result/{id}/live/{file}`
/// (`init.mp4` and `clip-NNNNN.m4s`, only the ones the job recorded, with `ETag` and `Range`).
struct LiveStreamController<Context: CallerContext>: Sendable {
    let queue: JobQueue
    let files: JobFiles
    let fileIO = FileIO()

    func addRoutes(to router: Router<Context>) {
        router.getAndHead("/api/result/:id/live.m3u8", use: playlist)
        router.get("/api/result/:id/live/:file", use: segment)
        router.head("/api/result/:id/live/:file", use: segment)
    }

    @Sendable func playlist(request: Request, context: Context) async throws -> Response {
        let (job, stream) = try await liveStream(context)
        var headers = HTTPFields()
        headers[.contentType] = "application/vnd.apple.mpegurl"
        // It grows with every clip: players must ask again each time.
        headers[.cacheControl] = "no-store"
        let text = LivePlaylist(stream: stream, ended: job.status.isTerminal).text
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    @Sendable func segment(request: Request, context: Context) async throws -> Response {
        let (job, stream) = try await liveStream(context)
        let name = try context.parameters.require("file")
        let path = files.livePath(for: job.id, file: name)
        guard stream.contains(file: name), let size = files.fileSize(at: path) else {
            throw APIError(.notFound, code: "not_found", message: "The live stream has no file \(name).")
        }
        var headers = HTTPFields()
        headers[.contentType] = name.hasSuffix(".m4s") ? "video/iso.segment" : "video/mp4"
        headers[.eTag] = Self.eTag(job: job, file: name, size: size)
        // A listed segment does not change within an attempt, but a retried job reuses the names: caches keep it
        // and ask again with `If-None-Match` (a 304, no body), so a new attempt is never answered from a stale copy.
        headers[.cacheControl] = "private, no-cache"
        return try await FileResponse(path: path, size: size, headers: headers)
            .response(to: request, context: context, fileIO: fileIO)
    }

    /// The job and its live stream: 404 `not_found` for an unknown job, 410 `result_expired` once retention deleted
    /// the files, 404 `no_segments_yet` before the first clip (of this attempt) is ready.
    private func liveStream(_ context: Context) async throws -> (Job, LiveStream) {
        let id = try context.parameters.require("id").lowercased()
        let job = try await queue.visibleJob(id: id, to: context.caller)
        guard job.expiredAt == nil else {
            throw APIError(
                .gone, code: "result_expired", message: "The live stream was deleted by the retention policy.")
        }
        guard let stream = job.live else {
            throw APIError(
                .notFound, code: "no_segments_yet",
                message: "No clip of this request is ready yet; wait for `clip_ready` or `segments_ready` > 0.")
        }
        return (job, stream)
    }

    /// Strong validator: the job, the attempt (when it started), the file and its size.
    static func eTag(job: Job, file: String, size: Int) -> String {
        let started = Int((job.startedAt?.timeIntervalSince1970 ?? 0) * 1000)
        return "\"\(job.id.prefix(8))-\(started)-\(file)-\(size)\""
    }
}
