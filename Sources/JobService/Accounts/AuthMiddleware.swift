import Hummingbird

/// With auth on, finds the caller's API key (a `Bearer` token, or the page's `infinitetalk_key` cookie) and puts it
/// in the request context; refuses a missing, unknown or revoked key with 401 `unauthorized` on every route that
/// needs one. The key is looked up on every request, so a revoked key stops working at once.
///
/// Open without a key: the page's files, `/healthz`, `/readyz`, `/openapi.json` and `GET /api/config` (the page reads
/// it to learn that it must ask for a key). `/metrics` needs an admin key.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let keys: any KeyRepository
    let enabled: Bool

    static let cookieName = "infinitetalk_key"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard enabled else { return try await next(request, context) }
        let path = request.uri.path
        let needsAdmin = path == "/metrics"
        guard needsAdmin || Self.needsKey(path: path, method: request.method) else {
            var context = context
            if let token = Self.token(of: request), let key = try await keys.key(token: token), !key.isRevoked {
                context.caller = .key(key)
            }
            return try await next(request, context)
        }
        let key = try await authenticate(request)
        if needsAdmin && !key.isAdmin {
            throw APIError(.forbidden, code: "forbidden", message: "/metrics needs an admin key.")
        }
        var context = context
        context.caller = .key(key)
        return try await next(request, context)
    }

    /// Whether `path` needs a key: everything under `/api` and `/ws`, except `GET /api/config`.
    static func needsKey(path: String, method: HTTPRequest.Method) -> Bool {
        if path == "/ws" { return true }
        guard path == "/api" || path.hasPrefix("/api/") else { return false }
        if path == "/api/config" && (method == .get || method == .head) { return false }
        return true
    }

    private func authenticate(_ request: Request) async throws -> APIKey {
        let (key, refusal) = try await Self.check(token: Self.token(of: request), keys: keys)
        if let refusal { throw refusal }
        return key!
    }

    /// Why a request with `token` is refused (401 `unauthorized`), or `nil` when its key is valid.
    static func refusal(token: String?, keys: any KeyRepository) async throws -> APIError? {
        try await check(token: token, keys: keys).refusal
    }

    private static func check(token: String?, keys: any KeyRepository) async throws -> (APIKey?, refusal: APIError?) {
        guard let token else {
            return (
                nil,
                .unauthorized(
                    "This server needs an API key: send `Authorization: Bearer <key>` (create one with `infinitetalk keys create`)."
                )
            )
        }
        guard let key = try await keys.key(token: token) else { return (nil, .unauthorized("Unknown API key.")) }
        guard !key.isRevoked else { return (nil, .unauthorized("This API key was revoked; ask for a new one.")) }
        return (key, nil)
    }

    /// The token of `Authorization: Bearer <token>`, else of the session cookie.
    static func token(of request: Request) -> String? {
        token(authorization: request.headers[.authorization], cookies: request.headers[values: .cookie])
    }

    static func token(authorization: String?, cookies: [String]) -> String? {
        if let header = authorization {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let token = parts[1].trimmingCharacters(in: .whitespaces)
                return token.isEmpty ? nil : token
            }
            return nil
        }
        for line in cookies {
            for cookie in line.split(separator: ";") {
                let pair = cookie.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if pair.count == 2, pair[0] == cookieName, !pair[1].isEmpty { return pair[1] }
            }
        }
        return nil
    }
}

extension APIError {
    /// 429 with `Retry-After: seconds`.
    static func tooManyRequests(_ code: String, _ message: String, retryAfter seconds: Int) -> APIError {
        APIError(.tooManyRequests, code: code, message: message, headers: [.retryAfter: String(seconds)])
    }

    static func unauthorized(_ message: String) -> APIError {
        APIError(
            .unauthorized, code: "unauthorized", message: message,
            headers: [.wwwAuthenticate: #"Bearer realm="infinitetalk""#])
    }
}
