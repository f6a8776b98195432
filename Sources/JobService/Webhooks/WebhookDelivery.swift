import Foundation
import GRDB

/// One webhook to deliver, a row of the persistent outbox (`webhook_delivery`): written when the event happens, so a
/// crash loses nothing; its `id` is the `webhook-id` of every attempt, so receivers can drop duplicates.
struct WebhookDelivery: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "webhook_delivery"

    enum State: String, Codable, Sendable, DatabaseValueConvertible {
        /// Not delivered yet; tried again at `nextAttemptAt`.
        case pending
        case delivered
        /// Given up: refused address, or no success within the retry window.
        case failed
    }

    var id: String
    var jobId: String
    var owner: String?
    var url: String
    var event: WebhookEvent
    /// The exact body of every attempt.
    var body: String
    var createdAt: Date
    var state: State
    var attempts: Int
    var nextAttemptAt: Date
    var lastAttemptAt: Date?
    var lastStatusCode: Int?
    var lastError: String?

    init(jobID: String, owner: String?, url: String, event: WebhookEvent, body: String, now: Date) {
        id = "msg_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        jobId = jobID
        self.owner = owner
        self.url = url
        self.event = event
        self.body = body
        createdAt = now
        state = .pending
        attempts = 0
        nextAttemptAt = now
    }

    enum Columns {
        static let jobId = Column(CodingKeys.jobId)
        static let state = Column(CodingKeys.state)
        static let nextAttemptAt = Column(CodingKeys.nextAttemptAt)
        static let createdAt = Column(CodingKeys.createdAt)
    }
}

extension WebhookEvent: DatabaseValueConvertible {}

/// The last webhook of a job as its status shows it (`webhook` in `GET /api/status/{id}`).
public struct WebhookDeliveryState: Encodable, Sendable, Equatable {
    var id: String
    var event: String
    var url: String
    var state: String
    var attempts: Int
    var lastAttemptAt: Date?
    var lastStatusCode: Int?
    var lastError: String?
    var nextAttemptAt: Date?

    init(_ delivery: WebhookDelivery) {
        id = delivery.id
        event = delivery.event.rawValue
        url = delivery.url
        state = delivery.state.rawValue
        attempts = delivery.attempts
        lastAttemptAt = delivery.lastAttemptAt
        lastStatusCode = delivery.lastStatusCode
        lastError = delivery.lastError
        nextAttemptAt = delivery.state == .pending ? delivery.nextAttemptAt : nil
    }
}
