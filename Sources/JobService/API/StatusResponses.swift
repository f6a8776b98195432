import Foundation

/// A job as the API shows it: the seed's fields (`request_id`, `status`, `message`, `timestamp`,
/// `position_in_queue`, `estimated_time`, `result_url`) plus extensions. Nil values are written as `null`.
public struct JobStatusResponse: Encodable, Sendable, Equatable {
    public var requestId: String
    public var status: JobStatus
    public var message: String
    /// When the request was created (as in the seed).
    public var timestamp: Date
    @NullEncoded public var positionInQueue: Int?
    @NullEncoded public var estimatedTime: String?
    @NullEncoded public var estimatedSeconds: Double?
    @NullEncoded public var resultUrl: String?
    public var createdAt: Date
    @NullEncoded public var startedAt: Date?
    @NullEncoded public var finishedAt: Date?
    @NullEncoded public var progress: JobProgress?
    public var params: JobParameters
    @NullEncoded public var error: JobFailure?
    public var attempts: Int
    @NullEncoded public var result: JobOutput?
    /// Clips of the current attempt that can be watched (`playlist_url`).
    public var segmentsReady: Int
    /// The live stream's HLS playlist, from the first ready clip on.
    @NullEncoded public var playlistUrl: String?
    /// The batch the job belongs to (`POST /api/batches`), else `null`.
    @NullEncoded public var batchId: String?
    /// The job's latest webhook and how its delivery went (`GET /api/status/{id}` only; absent elsewhere and
    /// when the job has none).
    public var webhook: WebhookDeliveryState?
}

/// `POST /api/generate`'s answer: the seed's shape plus `params`.
struct SubmitResponse: Encodable, Sendable {
    var requestId: String
    var status: JobStatus
    var message: String
    var timestamp: Date
    /// The place the job got in the queue (it may already have started by the time the client reads this).
    var positionInQueue: Int
    var params: JobParameters

    /// The answer for `job` as stored, at `position`.
    init(stored job: Job, position: Int) {
        requestId = job.id
        status = job.status
        message = job.message
        timestamp = job.createdAt
        positionInQueue = position
        params = job.parameters
    }
}

/// `GET /api/queue`.
struct QueueResponse: Encodable, Sendable {
    var queueSize: Int
    var processingCount: Int
    var maxQueueSize: Int
    var maxConcurrent: Int
    /// The processing jobs, then the queued ones in queue order.
    var requests: [JobStatusResponse]
}

/// `GET /api/requests`.
struct RequestListResponse: Encodable, Sendable {
    var requests: [JobStatusResponse]
    var total: Int
    var limit: Int
    var offset: Int
}

// MARK: - WebSocket messages

/// `queue_update`: the queue changed.
public struct QueueUpdateMessage: Encodable, Sendable {
    public var type = "queue_update"
    public var timestamp: Date
    public var queueSize: Int
    public var processingCount: Int
    public var maxQueueSize: Int
    public var maxConcurrent: Int
    public var queuedIds: [String]
    public var processingIds: [String]
    /// The owner of each listed job that has one (not sent): a key's client gets only its own jobs' ids.
    var owners: [String: String] = [:]

    enum CodingKeys: String, CodingKey {
        case type, timestamp, queueSize, processingCount, maxQueueSize, maxConcurrent, queuedIds, processingIds
    }

    /// This message as a client of `owner`'s key gets it: the counts, and only the ids of its own jobs.
    func visible(to owner: String) -> QueueUpdateMessage {
        var message = self
        message.queuedIds = queuedIds.filter { owners[$0] == owner }
        message.processingIds = processingIds.filter { owners[$0] == owner }
        return message
    }
}

/// `status_update`: a job's status or message changed; the whole status object plus `type`.
public struct StatusUpdateMessage: Encodable, Sendable {
    public var status: JobStatusResponse

    enum CodingKeys: String, CodingKey { case type }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode("status_update", forKey: .type)
        try status.encode(to: encoder)
    }
}

/// `progress_update`: a running job advanced. The progress fields are `JobProgress`'s, as in a status object.
public struct ProgressUpdateMessage: Encodable, Sendable {
    public var requestId: String
    /// The job's batch; the key is left out for a job outside a batch.
    public var batchId: String?
    public var message: String
    public var progress: JobProgress
    public var timestamp: Date

    enum CodingKeys: String, CodingKey { case type, requestId, batchId, message, timestamp }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode("progress_update", forKey: .type)
        try container.encode(requestId, forKey: .requestId)
        try container.encodeIfPresent(batchId, forKey: .batchId)
        try container.encode(message, forKey: .message)
        try container.encode(timestamp, forKey: .timestamp)
        try progress.encode(to: encoder)
    }
}

/// `clip_ready`: one more clip of a running job can be watched; its segment is in the playlist.
public struct ClipReadyMessage: Encodable, Sendable {
    public var type = "clip_ready"
    public var requestId: String
    /// The job's batch; the key is left out for a job outside a batch.
    public var batchId: String?
    /// The clip that is ready (1-based).
    public var clip: Int
    /// How many clips the job will have; `nil` when the engine cannot tell.
    @NullEncoded public var clips: Int?
    /// Seconds of video that can be watched now.
    public var durationSeconds: Double
    public var segmentsReady: Int
    public var playlistUrl: String
    public var timestamp: Date
}
