import Foundation
import GRDB

/// The API keys in SQLite, in the jobs' database (`api_key` table).
public struct GRDBKeyRepository: KeyRepository {
    private let writer: any DatabaseWriter

    init(writer: any DatabaseWriter) {
        self.writer = writer
    }

    /// Opens (creating and migrating if needed) the database at `path`: what the `keys` commands use, also while
    /// the server runs (SQLite in WAL mode takes both).
    public static func open(path: String) throws -> GRDBKeyRepository {
        GRDBKeyRepository(writer: try AppDatabase.openPool(path: path))
    }

    public func insert(_ key: APIKey) async throws {
        try await writer.write { db in try key.insert(db) }
    }

    public func key(token: String) async throws -> APIKey? {
        let hash = APIKey.hash(token: token)
        return try await writer.read { db in
            try APIKey.filter(APIKey.Columns.tokenHash == hash).fetchOne(db)
        }
    }

    public func key(id: String) async throws -> APIKey? {
        try await writer.read { db in try APIKey.fetchOne(db, key: id) }
    }

    public func list() async throws -> [APIKey] {
        try await writer.read { db in try APIKey.order(APIKey.Columns.createdAt, APIKey.Columns.id).fetchAll(db) }
    }

    public func revoke(id: String, now: Date) async throws -> APIKey? {
        try await writer.write { db in
            guard var key = try APIKey.fetchOne(db, key: id) else { return nil }
            if key.revokedAt == nil {
                key.revokedAt = now
                try key.update(db)
            }
            return key
        }
    }
}
