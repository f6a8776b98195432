import GRDB

/// The embedded store: one SQLite database (`AppDatabase`) and the repositories over it, which share its connection.
struct SQLiteDatabase: Sendable {
    let jobs: GRDBJobRepository
    let keys: GRDBKeyRepository
    let idempotency: GRDBIdempotencyStore
    let webhooks: WebhookOutbox

    init(writer: any DatabaseWriter) {
        jobs = GRDBJobRepository(writer: writer)
        keys = GRDBKeyRepository(writer: writer)
        idempotency = GRDBIdempotencyStore(writer: writer)
        webhooks = WebhookOutbox(writer: writer)
    }

    /// Opens (creating and migrating if needed) the database at `path`.
    static func open(path: String) throws -> SQLiteDatabase {
        SQLiteDatabase(writer: try AppDatabase.openPool(path: path))
    }

    /// A fresh, empty database in memory.
    static func inMemory() throws -> SQLiteDatabase {
        SQLiteDatabase(writer: try AppDatabase.makeInMemoryQueue())
    }
}
