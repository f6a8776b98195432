/// Time as seen by the code that waits, throttles or times out (the engine's heartbeats and time limits, the worker's
/// ticks and shutdown grace, the progress rate limit, retention sweeps), so tests can drive it instead of waiting.
public protocol ServiceClock: Sendable {
    /// Now, as the time since an arbitrary fixed start.
    var now: Duration { get }

    /// Suspends for `duration` of this clock's time; throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

/// The system's monotonic clock (`ContinuousClock`).
public struct SystemClock: ServiceClock {
    private static let start = ContinuousClock.now

    public init() {}

    public var now: Duration { ContinuousClock.now - Self.start }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}
