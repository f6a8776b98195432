import Foundation

/// `POST /api/batches`'s answer: the batch's id and each job's submit answer, in the order of the audio parts.
struct BatchSubmitResponse: Encodable, Sendable {
    var batchId: String
    var status: String
    var requestIds: [String]
    var requests: [SubmitResponse]
}

/// `GET /api/batches/{id}`: the jobs' status objects and the batch as a whole.
struct BatchStatusResponse: Encodable, Sendable {
    var batchId: String
    /// `queued` (nothing started), `processing` (some not finished), then `completed` (every job), `cancelled`
    /// (every job), `failed` (none completed) or `partial` (some completed, some failed or were cancelled).
    var status: String
    var total: Int
    /// Jobs per status (every status present, 0 included).
    var counts: [String: Int]
    /// 0...1: finished jobs count 1, running ones their own progress.
    var progress: Double
    /// Seconds until the last job is done; `null` once every job finished.
    @NullEncoded var estimatedSeconds: Double?
    var createdAt: Date
    /// `GET` it for a ZIP of the finished videos.
    var resultsUrl: String
    var requests: [JobStatusResponse]

    init(batchID: String, statuses: [JobStatusResponse]) {
        batchId = batchID
        total = statuses.count
        var counts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { ($0.rawValue, 0) })
        for status in statuses { counts[status.status.rawValue, default: 0] += 1 }
        self.counts = counts
        let finished = statuses.filter { $0.status.isTerminal }
        if finished.count == statuses.count {
            let completed = counts[JobStatus.completed.rawValue] ?? 0
            if completed == statuses.count {
                status = "completed"
            } else if counts[JobStatus.cancelled.rawValue] == statuses.count {
                status = "cancelled"
            } else {
                status = completed > 0 ? "partial" : "failed"
            }
        } else {
            status = statuses.allSatisfy { $0.status == .queued } ? "queued" : "processing"
        }
        let done = statuses.reduce(0.0) { sum, job in
            sum + (job.status.isTerminal ? 1 : job.status == .processing ? (job.progress?.progress ?? 0) : 0)
        }
        progress = statuses.isEmpty ? 0 : ((done / Double(statuses.count)) * 1000).rounded() / 1000
        estimatedSeconds = statuses.compactMap(\.estimatedSeconds).max()
        createdAt = statuses.map(\.createdAt).min() ?? Date()
        resultsUrl = "/api/batches/\(batchID)/results.zip"
        requests = statuses
    }
}
