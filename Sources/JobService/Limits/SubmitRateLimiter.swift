import Synchronization

/// A token bucket per API key for `POST /api/generate`: a key may submit `perMinute` jobs a minute, in bursts of
/// up to a minute's worth. Buckets live in memory (a restart forgives everyone).
public final class SubmitRateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Duration
    }

    private let clock: any ServiceClock
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(clock: any ServiceClock) {
        self.clock = clock
    }

    /// Takes `count` submits from `key`'s bucket (all or none).
    /// - Returns: `nil` when the submits may go ahead, else how long until the bucket holds them.
    public func take(key: String, perMinute: Double, count: Int = 1) -> Duration? {
        let now = clock.now
        let capacity = max(1, perMinute)
        let needed = Double(count)
        let perSecond = perMinute / 60
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
            let elapsed =
                Double((now - bucket.updated).components.seconds)
                + Double((now - bucket.updated).components.attoseconds) / 1e18
            bucket.tokens = min(capacity, bucket.tokens + elapsed * perSecond)
            bucket.updated = now
            defer { buckets[key] = bucket }
            guard bucket.tokens < needed else {
                bucket.tokens -= needed
                return nil
            }
            // More than the bucket ever holds: refused for good (the caller says so).
            guard perSecond > 0, needed <= capacity else { return .seconds(3600) }
            return .milliseconds(Int64(((needed - bucket.tokens) / perSecond * 1000).rounded(.up)))
        }
    }
}
