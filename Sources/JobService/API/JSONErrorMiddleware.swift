import Foundation
import Hummingbird
import Logging

/// Turns Hummingbird's own errors into the API's JSON errors: an unknown path is 404 `not_found`, a known path with a
/// method it does not take is 405 `method_not_allowed` (with `Allow`), anything else keeps its status with a code
/// derived from it. The known paths and methods come from the OpenAPI document, the routes' single description.
/// Any other error no handler turned into an answer is a 500 `internal` with a generic message; its details go to
/// the log only (they may name internal paths).
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes = APIRoutes.fromOpenAPI
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            throw translate(error, request: request)
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            logger.error("\(request.method) \(request.uri.path) failed: \(String(reflecting: error))")
            throw APIError.internal
        }
    }

    private func translate(_ error: HTTPError, request: Request) -> APIError {
        let path = request.uri.path
        guard error.status == .notFound else {
            let code = error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
            return APIError(
                error.status, code: code.isEmpty ? "http_\(error.status.code)" : code,
                message: error.body ?? error.status.reasonPhrase, headers: error.headers)
        }
        let allowed = routes.methods(forPath: path)
        guard !allowed.isEmpty, !allowed.contains(request.method) else {
            return APIError(.notFound, code: "not_found", message: "Nothing at \(path).")
        }
        var headers = HTTPFields()
        headers[.allow] = (allowed.contains(.get) && !allowed.contains(.head) ? allowed + [.head] : allowed)
            .map(\.rawValue).sorted().joined(separator: ", ") // GET routes answer HEAD too (HeadForGetMiddleware)
        return APIError(
            .methodNotAllowed, code: "method_not_allowed",
            message: "\(path) does not take \(request.method.rawValue); it takes \(headers[.allow] ?? "").",
            headers: headers)
    }
}

/// The API's paths (`/api/status/{request_id}` matches any one segment in place of the braces) and their methods.
struct APIRoutes: Sendable {
    let routes: [(segments: [String], methods: [HTTPRequest.Method])]

    static let fromOpenAPI: APIRoutes = {
        guard let data = OpenAPIDocument.data,
            let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let paths = document["paths"] as? [String: [String: Any]]
        else { return APIRoutes(routes: []) }
        return APIRoutes(
            routes: paths.map { path, operations in
                let methods = operations.keys.compactMap { HTTPRequest.Method($0.uppercased()) }
                return (segments(of: path), methods.sorted { $0.rawValue < $1.rawValue })
            })
    }()

    func methods(forPath path: String) -> [HTTPRequest.Method] {
        let wanted = Self.segments(of: path)
        return routes.first { route in
            route.segments.count == wanted.count
                && zip(route.segments, wanted).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
        }?.methods ?? []
    }

    private static func segments(of path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }
}
