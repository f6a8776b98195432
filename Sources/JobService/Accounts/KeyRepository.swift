import Foundation

/// Where API keys are kept. `GRDBKeyRepository` (SQLite, the same database as the jobs) is the service's.
public protocol KeyRepository: Sendable {
    func insert(_ key: APIKey) async throws

    /// The key whose token this is, revoked or not (the caller decides what a revoked key means).
    func key(token: String) async throws -> APIKey?

    func key(id: String) async throws -> APIKey?

    /// Every key, oldest first.
    func list() async throws -> [APIKey]

    /// Marks the key revoked (once; a second revoke keeps the first date).
    /// - Returns: the key, or `nil` when no key has this id.
    func revoke(id: String, now: Date) async throws -> APIKey?
}
