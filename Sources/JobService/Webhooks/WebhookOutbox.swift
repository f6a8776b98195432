import Foundation
import GRDB

/// The persistent outbox of webhooks, in the jobs' database.
public struct WebhookOutbox: Sendable {
    let writer: any DatabaseWriter

    /// Adds `delivery`, unless the job already has one for this event (progress events excepted): recovery after a
    /// crash may offer an event twice.
    /// - Returns: whether it was added.
    @discardableResult
    func add(_ delivery: WebhookDelivery) async throws -> Bool {
        try await writer.write { db in
            if delivery.event != .progress {
                let known = try WebhookDelivery.filter(
                    WebhookDelivery.Columns.jobId == delivery.jobId && Column("event") == delivery.event.rawValue
                ).fetchCount(db)
                if known > 0 { return false }
            }
            try delivery.insert(db)
            return true
        }
    }

    /// Pending deliveries due at `now`, earliest first.
    func due(at now: Date, limit: Int) async throws -> [WebhookDelivery] {
        try await writer.read { db in
            try WebhookDelivery.filter(
                WebhookDelivery.Columns.state == WebhookDelivery.State.pending
                    && WebhookDelivery.Columns.nextAttemptAt <= now
            )
            .order(WebhookDelivery.Columns.nextAttemptAt).limit(limit).fetchAll(db)
        }
    }

    func update(_ delivery: WebhookDelivery) async throws {
        try await writer.write { db in try delivery.update(db) }
    }

    /// The job's latest delivery.
    func latest(ofJob jobID: String) async throws -> WebhookDelivery? {
        try await writer.read { db in
            try WebhookDelivery.filter(WebhookDelivery.Columns.jobId == jobID)
                .order(WebhookDelivery.Columns.createdAt.desc, Column.rowID.desc).fetchOne(db)
        }
    }

    /// Jobs with a webhook that moved to a status whose event the outbox lacks (a crash between the two writes),
    /// among those created after `since`.
    func jobsMissingEvents(since: Date) async throws -> [Job] {
        try await writer.read { db in
            let jobs = try Job.filter(
                Column("webhookURL") != nil && Job.Columns.status != JobStatus.queued && Job.Columns.createdAt >= since
            ).fetchAll(db)
            return try jobs.filter { job in
                guard let event = WebhookEvent(movingTo: job.status) else { return false }
                return try WebhookDelivery.filter(
                    WebhookDelivery.Columns.jobId == job.id && Column("event") == event.rawValue
                ).fetchCount(db) == 0
            }
        }
    }
}
