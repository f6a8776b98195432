import Foundation
import Hummingbird

/// A path with a control character (NUL included) once percent-decoded, or with broken percent-encoding, is 400
/// `invalid_path`: file systems cut a name at NUL, so `/app.js%00.png` would otherwise be served as `app.js`.
struct PathCharactersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let path = request.uri.path.removingPercentEncoding,
            !path.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw APIError(
                .badRequest, code: "invalid_path",
                message: "The path has a control character or broken percent-encoding.")
        }
        return try await next(request, context)
    }
}
