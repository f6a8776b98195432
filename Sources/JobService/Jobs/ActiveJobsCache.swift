import Synchronization

/// The last `ActiveJobs` read from the database, kept until the next write, so status reads need no query.
///
/// Every write calls `invalidate()` once it has committed: the cached value goes and `version` moves on. A read
/// takes the version before it starts and keeps its result only if the version is still the same when it ends, so
/// a snapshot taken before a write finished is never kept.
final class ActiveJobsCache: Sendable {
    private struct State {
        var version: UInt64 = 0
        var jobs: ActiveJobs?
    }

    private let state = Mutex(State())

    /// The cached jobs if there are any, and the version a new read must hand to `store`.
    func lookup() -> (jobs: ActiveJobs?, version: UInt64) {
        state.withLock { ($0.jobs, $0.version) }
    }

    /// Keeps `jobs` unless a write finished since the read that produced them began (at `version`).
    func store(_ jobs: ActiveJobs, readAt version: UInt64) {
        state.withLock { state in
            if state.version == version { state.jobs = jobs }
        }
    }

    /// A write committed: what is cached may be out of date.
    func invalidate() {
        state.withLock { state in
            state.version &+= 1
            state.jobs = nil
        }
    }
}
