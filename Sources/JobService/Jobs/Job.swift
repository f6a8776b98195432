import Foundation
import GRDB

/// One generation request: its inputs, options, status and outcome. One row of the `job` table.
public struct Job: Codable, Sendable, Equatable, Identifiable {
    /// Lowercase UUID, the public `request_id`.
    public var id: String
    /// Queue order: jobs are started in increasing `sequence` (FIFO); a re-queued job keeps its place.
    public var sequence: Int64
    public var status: JobStatus
    /// The latest human-readable message (`Request added to queue`, `Generating clip 2 of 3`, ...).
    public var message: String
    public var parameters: JobParameters
    public var imagePath: String
    public var audioPath: String
    /// The second speaker's audio (two-speaker jobs only).
    public var audio2Path: String?
    /// Measured at upload; drives time estimates.
    public var audioSeconds: Double
    /// Where the engine writes the video.
    public var resultPath: String
    public var output: JobOutput?
    public var errorCode: String?
    public var errorMessage: String?
    /// How many times the job was started.
    public var attempts: Int
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// When retention deleted the result (downloads then answer 410 `result_expired`).
    public var expiredAt: Date?
    /// The current attempt's live stream (`nil` until its first clip is ready, and again after retention).
    public var live: LiveStream?
    /// The API key that submitted the job (`APIKey.id`); `nil` when auth was off.
    public var owner: String?
    /// Where the job's webhooks go (`webhook_url`, else the key's default); `nil`: none.
    public var webhookURL: String?
    /// Whether `job.progress` webhooks are wanted too (at most one per 2 s).
    public var webhookProgress: Bool
    /// The batch the job was submitted in (`POST /api/batches`), if any.
    public var batchId: String?

    public init(
        id: String, sequence: Int64 = 0, status: JobStatus = .queued, message: String = "Request added to queue",
        parameters: JobParameters, imagePath: String, audioPath: String, audio2Path: String? = nil,
        audioSeconds: Double,
        resultPath: String, output: JobOutput? = nil, errorCode: String? = nil, errorMessage: String? = nil,
        attempts: Int = 0, createdAt: Date = Date(), startedAt: Date? = nil, finishedAt: Date? = nil,
        expiredAt: Date? = nil, live: LiveStream? = nil, owner: String? = nil, webhookURL: String? = nil,
        webhookProgress: Bool = false, batchId: String? = nil
    ) {
        self.id = id
        self.sequence = sequence
        self.status = status
        self.message = message
        self.parameters = parameters
        self.imagePath = imagePath
        self.audioPath = audioPath
        self.audio2Path = audio2Path
        self.audioSeconds = audioSeconds
        self.resultPath = resultPath
        self.output = output
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.attempts = attempts
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.expiredAt = expiredAt
        self.live = live
        self.owner = owner
        self.webhookURL = webhookURL
        self.webhookProgress = webhookProgress
        self.batchId = batchId
    }

    /// The failure, when the job failed or was cancelled.
    public var failure: JobFailure? {
        guard let errorCode else { return nil }
        return JobFailure(code: errorCode, message: errorMessage ?? "")
    }
}

extension JobStatus: DatabaseValueConvertible {}

extension Job: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "job"

    public enum Columns {
        static let id = Column(CodingKeys.id)
        static let sequence = Column(CodingKeys.sequence)
        static let status = Column(CodingKeys.status)
        static let attempts = Column(CodingKeys.attempts)
        static let createdAt = Column(CodingKeys.createdAt)
        static let finishedAt = Column(CodingKeys.finishedAt)
        static let expiredAt = Column(CodingKeys.expiredAt)
        static let live = Column(CodingKeys.live)
        static let owner = Column(CodingKeys.owner)
        static let batchId = Column(CodingKeys.batchId)
    }
}
