import Foundation
import Synchronization

/// Measures how fast the engine works, in seconds of compute per second of audio, to estimate waiting times.
///
/// The rate is the median over the last `window` completed jobs (seeded from the database at start, so it survives
/// restarts); before any, an engine-specific prior. A median, not a mean: one odd job (audio whose length was
/// misjudged, a machine that was busy) must not multiply every estimate.
public final class ThroughputEstimator: Sendable {
    private let samples = Mutex<[Double]>([])
    private let window: Int
    private let prior: Double

    /// - Parameter prior: seconds of compute per second of audio assumed before any job finished.
    public init(prior: Double, window: Int = 20) {
        self.prior = prior
        self.window = window
    }

    /// A rough prior for an engine: the preview renders about twice real time on a CPU (measured: 4.6 s for 9.4 s
    /// of audio); the 14B model takes far longer.
    public static func prior(forEngine name: String) -> Double {
        name == "preview" ? 0.5 : 30.0
    }

    /// Seconds of compute per second of audio.
    public var secondsPerAudioSecond: Double {
        samples.withLock { $0.isEmpty ? prior : Self.median($0) }
    }

    /// The middle value; the mean of the two middle ones for an even count.
    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
    }

    /// Records a finished job.
    public func record(computeSeconds: Double, audioSeconds: Double) {
        guard computeSeconds > 0, audioSeconds > 0 else { return }
        samples.withLock { samples in
            samples.append(computeSeconds / audioSeconds)
            if samples.count > window { samples.removeFirst(samples.count - window) }
        }
    }

    /// Records a completed job from its timestamps.
    public func record(_ job: Job) {
        guard let startedAt = job.startedAt, let finishedAt = job.finishedAt else { return }
        record(computeSeconds: finishedAt.timeIntervalSince(startedAt), audioSeconds: job.audioSeconds)
    }

    /// Expected compute time for `audioSeconds` of audio.
    public func expectedSeconds(forAudio audioSeconds: Double) -> Double {
        secondsPerAudioSecond * audioSeconds
    }

    /// Words for a number of seconds, as the seed API shows them (`"3 minutes"`).
    public static func describe(seconds: Double) -> String {
        switch seconds {
        case ..<60: return "less than a minute"
        case ..<90: return "about 1 minute"
        case ..<3600: return "about \(Int((seconds / 60).rounded())) minutes"
        case ..<5400: return "about 1 hour"
        default: return "about \(Int((seconds / 3600).rounded())) hours"
        }
    }
}
