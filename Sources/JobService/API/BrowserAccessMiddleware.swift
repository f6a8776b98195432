import Hummingbird

/// Refuses requests `BrowserAccessPolicy` refuses (403 `forbidden_host` / `forbidden_origin`), before any route or
/// file is looked at. WebSocket upgrades are refused earlier, by `UpgradeAccessHandler`.
struct BrowserAccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: BrowserAccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        if let refusal = policy.refusal(
            method: request.method.rawValue, host: request.head.authority,
            origin: request.headers[.origin], isUpgrade: request.headers[.upgrade] != nil)
        {
            throw refusal
        }
        return try await next(request, context)
    }
}
