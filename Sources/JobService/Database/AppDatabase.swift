import Foundation
import GRDB

/// The service's SQLite database: how it is opened (a `DatabasePool` in WAL mode on disk, or an in-memory queue) and
/// the migrations that shape it. `SQLiteDatabase` holds the connection, shared by the repositories over it.
enum AppDatabase {
    /// Opens (creating if needed) the database at `path` and migrates it.
    static func openPool(path: String) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let pool = try DatabasePool(path: path, configuration: configuration)
        try migrator.migrate(pool)
        return pool
    }

    /// A fresh, empty, migrated database in memory.
    static func makeInMemoryQueue() throws -> DatabaseQueue {
        let queue = try DatabaseQueue()
        try migrator.migrate(queue)
        return queue
    }

    // Never edit a shipped migration: add a new one.
    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: job") { db in
            try db.create(table: "job") { table in
                table.primaryKey("id", .text)
                table.column("sequence", .integer).notNull().unique()
                table.column("status", .text).notNull().indexed()
                    .check(sql: "status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')")
                table.column("message", .text).notNull()
                table.column("parameters", .jsonText).notNull()
                table.column("imagePath", .text).notNull()
                table.column("audioPath", .text).notNull()
                table.column("audioSeconds", .double).notNull()
                table.column("resultPath", .text).notNull()
                table.column("output", .jsonText)
                table.column("errorCode", .text)
                table.column("errorMessage", .text)
                table.column("attempts", .integer).notNull().defaults(to: 0)
                table.column("createdAt", .datetime).notNull().indexed()
                table.column("startedAt", .datetime)
                table.column("finishedAt", .datetime)
                table.column("expiredAt", .datetime)
            }
        }
        migrator.registerMigration("v2: second speaker") { db in
            try db.alter(table: "job") { table in
                table.add(column: "audio2Path", .text)
            }
        }
        migrator.registerMigration("v3: live stream") { db in
            // The current attempt's segments (JSON), recorded before they are announced.
            try db.alter(table: "job") { table in
                table.add(column: "live", .jsonText)
            }
        }
        migrator.registerMigration("v4: api keys") { db in
            try db.create(table: "api_key") { table in
                table.primaryKey("id", .text)
                table.column("name", .text).notNull()
                table.column("prefix", .text).notNull()
                table.column("tokenHash", .text).notNull().unique()
                table.column("role", .text).notNull().check(sql: "role IN ('user', 'admin')")
                table.column("ratePerMinute", .double)
                table.column("maxQueued", .integer)
                table.column("webhookSecret", .text).notNull()
                table.column("webhookURL", .text)
                table.column("createdAt", .datetime).notNull()
                table.column("revokedAt", .datetime)
            }
            // The key that submitted the job (`api_key.id`); NULL for jobs submitted with auth off.
            try db.alter(table: "job") { table in
                table.add(column: "owner", .text)
            }
            try db.create(index: "job_owner_status", on: "job", columns: ["owner", "status"])
        }
        migrator.registerMigration("v5: webhooks") { db in
            try db.alter(table: "job") { table in
                table.add(column: "webhookURL", .text)
                table.add(column: "webhookProgress", .boolean).notNull().defaults(to: false)
            }
            try db.create(table: "webhook_delivery") { table in
                table.primaryKey("id", .text)
                table.column("jobId", .text).notNull().indexed()
                table.column("owner", .text)
                table.column("url", .text).notNull()
                table.column("event", .text).notNull()
                table.column("body", .text).notNull()
                table.column("createdAt", .datetime).notNull()
                table.column("state", .text).notNull().check(sql: "state IN ('pending', 'delivered', 'failed')")
                table.column("attempts", .integer).notNull()
                table.column("nextAttemptAt", .datetime).notNull()
                table.column("lastAttemptAt", .datetime)
                table.column("lastStatusCode", .integer)
                table.column("lastError", .text)
            }
            try db.create(index: "webhook_delivery_due", on: "webhook_delivery", columns: ["state", "nextAttemptAt"])
        }
        migrator.registerMigration("v6: idempotency keys") { db in
            try db.create(table: "idempotency_key") { table in
                table.column("owner", .text).notNull()
                table.column("key", .text).notNull()
                table.column("fingerprint", .text).notNull()
                table.column("jobId", .text).notNull()
                table.column("response", .text).notNull()
                table.column("createdAt", .datetime).notNull().indexed()
                table.primaryKey(["owner", "key"])
            }
        }
        migrator.registerMigration("v7: batches") { db in
            try db.alter(table: "job") { table in
                table.add(column: "batchId", .text)
            }
            try db.create(index: "job_batch", on: "job", columns: ["batchId"])
        }
        return migrator
    }
}
