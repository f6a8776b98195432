import Foundation
import Synchronization

/// The latest progress of a running job, as the API shows it (`progress` in a status object).
public struct JobProgress: Codable, Sendable, Equatable {
    public var stage: String
    public var message: String?
    @NullEncoded public var step: Int?
    @NullEncoded public var steps: Int?
    @NullEncoded public var clip: Int?
    @NullEncoded public var clips: Int?
    /// The whole job's fraction in `[0, 1]`; never goes backwards.
    public var progress: Double
    @NullEncoded public var etaSeconds: Double?

    public init(
        stage: String, message: String? = nil, step: Int? = nil, steps: Int? = nil, clip: Int? = nil,
        clips: Int? = nil, progress: Double = 0, etaSeconds: Double? = nil
    ) {
        self.stage = stage
        self.message = message
        self.step = step
        self.steps = steps
        self.clip = clip
        self.clips = clips
        self.progress = progress
        self.etaSeconds = etaSeconds
    }

    /// A one-line description: `Clip 2 of 3, step 3 of 4`.
    public var summary: String {
        var parts: [String] = []
        if let clip, let clips { parts.append("clip \(clip) of \(clips)") }
        if let step, let steps { parts.append("step \(step) of \(steps)") }
        guard !parts.isEmpty else { return message ?? stage }
        let text = parts.joined(separator: ", ")
        return text.prefix(1).uppercased() + text.dropFirst()
    }

    /// `message` stays out of the API object: a status object has its own, and `progress_update` sends it beside.
    enum CodingKeys: String, CodingKey { case stage, step, steps, clip, clips, progress, etaSeconds }
}

/// Progress of running jobs, kept in memory only (it changes many times a second; the database keeps the
/// message of each stage).
public final class LiveProgressStore: Sendable {
    private let entries = Mutex<[String: JobProgress]>([:])

    public init() {}

    public func progress(of jobID: String) -> JobProgress? {
        entries.withLock { $0[jobID] }
    }

    /// A stage started: keeps the fraction, resets step counters.
    @discardableResult
    public func record(_ stage: EngineStage) -> JobProgress {
        entries.withLock { entries in
            var entry = entries[stage.jobId] ?? JobProgress(stage: stage.stage)
            entry.stage = stage.stage
            entry.message = stage.message
            entry.clip = stage.clip ?? entry.clip
            entry.clips = stage.clips ?? entry.clips
            entry.step = nil
            entry.steps = nil
            entries[stage.jobId] = entry
            return entry
        }
    }

    /// A progress report: the fraction only ever grows.
    @discardableResult
    public func record(_ report: EngineProgress) -> JobProgress {
        entries.withLock { entries in
            var entry = entries[report.jobId] ?? JobProgress(stage: "generating")
            entry.step = report.step
            entry.steps = report.steps
            entry.clip = report.clip ?? entry.clip
            entry.clips = report.clips ?? entry.clips
            entry.progress = max(entry.progress, min(1, max(0, report.fraction)))
            entry.etaSeconds = report.etaSeconds
            entries[report.jobId] = entry
            return entry
        }
    }

    public func remove(_ jobID: String) {
        _ = entries.withLock { $0.removeValue(forKey: jobID) }
    }
}
