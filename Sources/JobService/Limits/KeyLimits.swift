import Foundation
import HTTPTypes

/// The fair limits of API keys (auth on): a submit rate (a token bucket) and a cap on queued jobs, each the key's
/// own (`keys create --rate/--max-queued`) or else the server's default (`--key-rate`, `--key-max-queued`).
/// Callers without a key (auth off) have neither: the queue's own cap (`--max-queue-size`) still holds.
public struct KeyLimits: Sendable {
    let rateLimiter: SubmitRateLimiter
    let defaultRatePerMinute: Double?
    let defaultMaxQueued: Int?

    public init(configuration: ServiceConfiguration, clock: any ServiceClock) {
        rateLimiter = SubmitRateLimiter(clock: clock)
        defaultRatePerMinute = configuration.keyRatePerMinute
        defaultMaxQueued = configuration.keyMaxQueued
    }

    /// Most queued jobs of `caller`; `nil`: no cap of its own.
    func maxQueued(for caller: Caller) -> Int? {
        guard case .key(let key) = caller else { return nil }
        return key.maxQueued ?? defaultMaxQueued
    }

    /// Takes `count` submits (a batch counts each job) from `caller`'s rate; 429 `rate_limited` with `Retry-After`
    /// when it has not that many left.
    func takeSubmit(for caller: Caller, count: Int = 1) throws {
        guard case .key(let key) = caller, let perMinute = key.ratePerMinute ?? defaultRatePerMinute, perMinute > 0
        else { return }
        guard let wait = rateLimiter.take(key: key.id, perMinute: perMinute, count: count) else { return }
        let seconds = max(
            1,
            Int(
                (Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18)
                    .rounded(.up)))
        throw APIError.tooManyRequests(
            "rate_limited", "This key may submit \(Self.format(perMinute)) jobs a minute; try again in \(seconds) s.",
            retryAfter: seconds)
    }

    private static func format(_ rate: Double) -> String {
        rate == rate.rounded() ? String(Int(rate)) : String(format: "%.2g", rate)
    }
}
