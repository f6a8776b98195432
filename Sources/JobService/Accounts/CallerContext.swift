import Hummingbird

/// A request context that knows who sent the request (`AuthMiddleware` sets it).
public protocol CallerContext: RequestContext {
    var caller: Caller { get }
}

extension AppRequestContext: CallerContext {}

extension JobQueue {
    /// The job with `id` as `caller` may see it: another key's job is unknown (404 `not_found`), like a missing one.
    func visibleJob(id: String, to caller: Caller) async throws -> Job {
        guard let job = try await job(id: id), caller.canSee(job) else { throw APIError.notFound(id) }
        return job
    }
}
