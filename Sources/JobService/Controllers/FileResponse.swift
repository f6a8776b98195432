import Hummingbird

/// One file on disk answered to `GET` or `HEAD`, as the result download and the live segments are: `If-None-Match`
/// (304), `Range` (206, or 416 outside the file), `If-Range`, and `HEAD` without a body.
struct FileResponse {
    let path: String
    let size: Int
    /// The answer's headers; `ETag` among them (the validator the conditional headers are checked against).
    var headers: HTTPFields

    func response(to request: Request, context: some RequestContext, fileIO: FileIO) async throws -> Response {
        var headers = self.headers
        headers[.acceptRanges] = "bytes"
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
            throw APIError(
                .rangeNotSatisfiable, code: "range_not_satisfiable",
                message: "The range lies outside the \(size)-byte file.", headers: headers)
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
}
