import Synchronization

/// Whether the service is draining (SIGTERM received): new jobs are refused with 503 `shutting_down` while the
/// running ones finish.
public final class ShutdownState: Sendable {
    private let draining = Mutex(false)

    public init() {}

    public var isDraining: Bool { draining.withLock { $0 } }

    /// - Returns: `true` the first time.
    @discardableResult
    func beginDraining() -> Bool {
        draining.withLock { draining in
            defer { draining = true }
            return !draining
        }
    }
}
