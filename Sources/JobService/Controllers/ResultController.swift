import Foundation
import Hummingbird

/// `GET|HEAD /api/result/{id}`: the finished video, with `Range`, `ETag` / `If-None-Match` and a download name.
struct ResultController<Context: RequestContext>: Sendable {
    let queue: JobQueue
    let files: JobFiles
    let fileIO = FileIO()

    func addRoutes(to router: Router<Context>) {
        router.get("/api/result/:id", use: download)
        router.head("/api/result/:id", use: download)
    }

    @Sendable func download(request: Request, context: Context) async throws -> Response {
        let id = try context.parameters.require("id").lowercased()
        guard let job = try await queue.job(id: id) else { throw APIError.notFound(id) }
        guard job.status == .completed else {
            throw APIError(
                .conflict, code: "not_ready", message: "The request is \(job.status.rawValue), not completed.")
        }
        guard job.expiredAt == nil, let size = files.resultSize(of: id) else {
            throw APIError(.gone, code: "result_expired", message: "The video was deleted by the retention policy.")
        }
        let path = files.resultPath(for: id)
        var headers = HTTPFields()
        headers[.contentType] = "video/mp4"
        headers[.acceptRanges] = "bytes"
        headers[.eTag] = Self.eTag(job: job, size: size)
        headers[.contentDisposition] = "attachment; filename=\"infinitetalk-\(id).mp4\""
        headers[.cacheControl] = "private, max-age=3600"

        if let ifNoneMatch = request.headers[.ifNoneMatch],
            ifNoneMatch == "*"
                || ifNoneMatch.split(separator: ",").contains(where: {
                    $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "W/", with: "") == headers[.eTag]
                })
        {
            return Response(status: .notModified, headers: headers)
        }

        // `If-Range` that does not match the current version asks for the whole file.
        let rangeHeader = request.headers[.ifRange].map { $0 == headers[.eTag] } ?? true ? request.headers[.range] : nil
        switch ByteRange.resolve(header: rangeHeader, size: size) {
        case .unsatisfiable:
            headers[.contentRange] = "bytes */\(size)"
            let error = APIError(
                .rangeNotSatisfiable, code: "range_not_satisfiable",
                message: "The range lies outside the \(size)-byte file.", headers: headers)
            throw error
        case .part(let range):
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
            headers[.contentLength] = String(range.count)
            if request.method == .head { return Response(status: .partialContent, headers: headers) }
            let body = try await fileIO.loadFile(path: path, range: range, context: context)
            return Response(status: .partialContent, headers: headers, body: body)
        case .whole:
            headers[.contentLength] = String(size)
            if request.method == .head { return Response(status: .ok, headers: headers) }
            let body = try await fileIO.loadFile(path: path, context: context)
            return Response(status: .ok, headers: headers, body: body)
        }
    }

    /// Strong validator: the job id plus the size and completion time (a re-generated result gets a new one).
    static func eTag(job: Job, size: Int) -> String {
        let finished = Int((job.finishedAt?.timeIntervalSince1970 ?? 0) * 1000)
        return "\"\(job.id.prefix(8))-\(size)-\(finished)\""
    }
}
