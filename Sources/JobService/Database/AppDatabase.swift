import Foundation
import GRDB

/// The service's SQLite database: a `DatabasePool` in WAL mode on disk (or an in-memory queue for tests), and the
/// migrations that shape it.
public final class AppDatabase: Sendable {
    /// Reads and writes go through this.
    public let writer: any DatabaseWriter

    /// Opens (creating if needed) the database at `path` and migrates it.
    public static func open(path: String) throws -> AppDatabase {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let pool = try DatabasePool(path: path, configuration: configuration)
        return try AppDatabase(pool)
    }

    /// A fresh, empty, migrated database in memory.
    public static func inMemory() throws -> AppDatabase {
        try AppDatabase(DatabaseQueue())
    }

    init(_ writer: any DatabaseWriter) throws {
        self.writer = writer
        try Self.migrator.migrate(writer)
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
        return migrator
    }
}
