import Foundation
import GRDB

/// A submit made with an `Idempotency-Key`: what it sent (a fingerprint of its fields and files) and what it was
/// answered, so a retry with the same key gets the same answer instead of a second job.
struct IdempotencyRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "idempotency_key"

    /// The API key's id; empty when auth is off.
    var owner: String
    var key: String
    var fingerprint: String
    var jobId: String
    /// The JSON body answered to the first submit.
    var response: String
    var createdAt: Date

    enum Columns {
        static let owner = Column(CodingKeys.owner)
        static let key = Column(CodingKeys.key)
        static let createdAt = Column(CodingKeys.createdAt)
    }
}

/// Where idempotency records are kept: the jobs' database (`GRDBIdempotencyStore`).
protocol IdempotencyStore: Sendable {
    /// The record of `owner`'s `key` made after `notBefore`, if any.
    func record(owner: String, key: String, notBefore: Date) async throws -> IdempotencyRecord?

    /// Stores `record` (replacing an older one of the same key) and forgets records made before `forgetBefore`.
    func save(_ record: IdempotencyRecord, forgetBefore: Date) async throws
}

struct GRDBIdempotencyStore: IdempotencyStore {
    let writer: any DatabaseWriter

    func record(owner: String, key: String, notBefore: Date) async throws -> IdempotencyRecord? {
        try await writer.read { db in
            try IdempotencyRecord.filter(
                IdempotencyRecord.Columns.owner == owner && IdempotencyRecord.Columns.key == key
                    && IdempotencyRecord.Columns.createdAt >= notBefore
            ).fetchOne(db)
        }
    }

    func save(_ record: IdempotencyRecord, forgetBefore: Date) async throws {
        try await writer.write { db in
            try IdempotencyRecord.filter(IdempotencyRecord.Columns.createdAt < forgetBefore).deleteAll(db)
            try record.insert(db, onConflict: .replace)
        }
    }
}
