import Foundation
import Hummingbird

/// An error answered to API clients as `{"error": {"code": "...", "message": "...", "field": "..."}}`.
///
/// `code` is stable (clients switch on it); `message` is for people. `field` names the form field at fault,
/// when there is one. Throw it from any handler: Hummingbird renders it through `HTTPResponseError`.
public struct APIError: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var field: String?
    /// Extra response headers, e.g. `Retry-After` on 429.
    public var headers: HTTPFields

    public init(
        _ status: HTTPResponse.Status, code: String, message: String, field: String? = nil, headers: HTTPFields = [:]
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
    }
}

/// The JSON shape of every error response.
struct ErrorBody: Codable, Sendable {
    struct Detail: Codable, Sendable {
        let code: String
        let message: String
        let field: String?
    }
    let error: Detail
}

extension APIError: HTTPResponseError {
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = Self.contentType
        return Response(status: status, headers: headers, body: .init(byteBuffer: jsonBody))
    }

    static let contentType = "application/json; charset=utf-8"

    /// The error's JSON body.
    var jsonBody: ByteBuffer {
        let body = try? JSONEncoder().encode(ErrorBody(error: .init(code: code, message: message, field: field)))
        return ByteBuffer(bytes: body ?? Data())
    }
}

// MARK: - Common errors

extension APIError {
    static func notFound(_ id: String) -> APIError {
        APIError(.notFound, code: "not_found", message: "No request with id \(id).")
    }

    static func invalidParameter(_ field: String, _ message: String) -> APIError {
        APIError(.unprocessableContent, code: "invalid_parameter", message: message, field: field)
    }

    /// A failure the client cannot act on; what went wrong is in the server's log, never in the answer.
    static let `internal` = APIError(
        .internalServerError, code: "internal", message: "The server failed to handle the request; see its log.")

    static let shuttingDown = APIError(
        .serviceUnavailable, code: "shutting_down",
        message: "The server is shutting down; try again shortly.")
}
