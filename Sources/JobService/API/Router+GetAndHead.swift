import Hummingbird

extension Router {
    /// Registers `handler` for `GET`, and for `HEAD` with the same headers and no body (monitoring tools check
    /// `/healthz` with `HEAD`; Hummingbird does not derive one from the other).
    @discardableResult
    func getAndHead(
        _ path: RouterPath,
        use handler: @escaping @Sendable (Request, Context) async throws -> some ResponseGenerator
    ) -> Self {
        get(path, use: handler)
        head(path) { request, context in
            var response = try await handler(request, context).response(from: request, context: context)
            response.body = ResponseBody()
            return response
        }
        return self
    }
}
