/// The order queued jobs start in when several API keys have jobs waiting: keys take turns, so one key's twenty
/// jobs cannot keep another key's single job waiting behind them.
///
/// A job's turn is how many jobs of its owner run or wait ahead of it; lower turns start first, and equal turns
/// keep submission order. With one owner (auth off, or a single key) this is plain first-in, first-out.
enum FairTurns {
    /// `queued` (in submission order) in the order the jobs will start, given the jobs `processing` now.
    static func order(queued: [Job], processing: [Job]) -> [Job] {
        var ahead: [String: Int] = [:]
        for job in processing { ahead[job.owner ?? "", default: 0] += 1 }
        let turns = queued.map { job -> (turn: Int, job: Job) in
            let owner = job.owner ?? ""
            defer { ahead[owner, default: 0] += 1 }
            return (ahead[owner, default: 0], job)
        }
        return turns.sorted { ($0.turn, $0.job.sequence) < ($1.turn, $1.job.sequence) }.map(\.job)
    }
}

extension ActiveJobs {
    /// The active jobs among `jobs` (any order): the queued ones in their fair order (`FairTurns`), the running
    /// ones oldest start first.
    init(fairlyOrdering jobs: [Job]) {
        let bySequence = jobs.sorted { $0.sequence < $1.sequence }
        let processing = bySequence.filter { $0.status == .processing }
        self.init(
            queued: FairTurns.order(queued: bySequence.filter { $0.status == .queued }, processing: processing),
            processing: processing)
    }
}
