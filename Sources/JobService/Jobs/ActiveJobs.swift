/// The jobs that are not finished, at one moment: the queued ones in the order they will start, the running ones
/// oldest start first.
public struct ActiveJobs: Sendable, Equatable {
    public var queued: [Job]
    public var processing: [Job]

    public init(queued: [Job], processing: [Job]) {
        self.queued = queued
        self.processing = processing
    }

    static let empty = ActiveJobs(queued: [], processing: [])

    /// The running jobs, then the queued ones.
    public var all: [Job] { processing + queued }

    /// The queued or running job with `id`; `nil` when it is finished or unknown.
    public func job(id: String) -> Job? {
        processing.first { $0.id == id } ?? queued.first { $0.id == id }
    }
}
