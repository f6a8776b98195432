import Foundation
import Hummingbird

/// `GET|HEAD /api/result/{id}`: the finished video, with `Range`, `ETag` / `If-None-Match` and a download name.
struct ResultController<Context: CallerContext>: Sendable {
    let queue: JobQueue
    let files: JobFiles
    let fileIO = FileIO()

    func addRoutes(to router: Router<Context>) {
        router.get("/api/result/:id", use: download)
        router.head("/api/result/:id", use: download)
    }

    @Sendable func download(request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id").lowercased()
        let job = try await queue.visibleJob(id: id, to: context.caller)
        guard job.status == .completed else {
            throw APIError(
                .conflict, code: "not_ready", message: "The request is \(job.status.rawValue), not completed.")
        }
        guard job.expiredAt == nil, let size = files.resultSize(of: id) else {
            throw APIError(.gone, code: "result_expired", message: "The video was deleted by the retention policy.")
        }
        var headers = HTTPFields()
        headers[.contentType] = "video/mp4"
        headers[.eTag] = Self.eTag(job: job, size: size)
        headers[.contentDisposition] = "attachment; filename=\"infinitetalk-\(id).mp4\""
        headers[.cacheControl] = "private, max-age=3600"
        return try await FileResponse(path: files.resultPath(for: id), size: size, headers: headers)
            .response(to: request, context: context, fileIO: fileIO)
    }

    /// Strong validator: the job id plus the size and completion time (a re-generated result gets a new one).
    static func eTag(job: Job, size: Int) -> String {
        let finished = Int((job.finishedAt?.timeIntervalSince1970 ?? 0) * 1000)
        return "\"\(job.id.prefix(8))-\(size)-\(finished)\""
    }
}
