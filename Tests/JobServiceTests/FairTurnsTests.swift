import Foundation
import Testing

@testable import JobService

/// Keys take turns: when several keys have jobs queued, one key's many jobs cannot keep another key's job waiting
/// behind them; with one owner the queue stays first-in, first-out.
@Suite struct FairTurnsTests {
    private func job(of owner: String?, sequence: Int64, status: JobStatus = .queued) -> Job {
        var job = TestSupport.makeJob()
        job.owner = owner
        job.sequence = sequence
        job.status = status
        return job
    }

    @Test func oneOwnersQueueIsFirstInFirstOut() {
        let queued = (1...5).map { job(of: nil, sequence: $0) }
        #expect(FairTurns.order(queued: queued, processing: []).map(\.sequence) == [1, 2, 3, 4, 5])
    }

    @Test func aLateKeysSingleJobGoesBeforeTheBusyKeysRest() {
        let running = job(of: "a", sequence: 1, status: .processing)
        let queued = (2...20).map { job(of: "a", sequence: $0) } + [job(of: "b", sequence: 21)]
        let order = FairTurns.order(queued: queued, processing: [running])
        #expect(order.first?.owner == "b")
        #expect(order.dropFirst().map(\.sequence) == Array(2...20))
    }

    @Test func keysAlternateInSubmissionOrder() {
        let queued = [
            job(of: "a", sequence: 1), job(of: "a", sequence: 2), job(of: "a", sequence: 3),
            job(of: "b", sequence: 4), job(of: "b", sequence: 5), job(of: "c", sequence: 6),
        ]
        #expect(FairTurns.order(queued: queued, processing: []).map(\.sequence) == [1, 4, 6, 2, 5, 3])
    }

    @Test(arguments: RepositoryKind.allCases)
    func theStoreStartsJobsInTurns(kind: RepositoryKind) async throws {
        let repository = try kind.make()
        var ids: [String: [String]] = [:]
        for owner in Array(repeating: "a", count: 20) + ["b"] {
            var job = TestSupport.makeJob()
            job.owner = owner
            let stored = try await repository.enqueue(job, maxQueueSize: 50)
            ids[owner, default: []].append(stored.job.id)
            if owner == "b" { #expect(stored.position == 2, "b's job is told it comes second") }
        }
        // "a" submitted 20 jobs before "b" submitted one; "b" waits for one of a's jobs, not twenty.
        let first = try await repository.claimNextJob()
        #expect(first?.id == ids["a"]?[0])
        let queue = try await repository.activeJobs().queued.map(\.id)
        #expect(queue.first == ids["b"]?[0], "positions follow the turns")
        let second = try await repository.claimNextJob()
        #expect(second?.id == ids["b"]?[0])
        let third = try await repository.claimNextJob()
        #expect(third?.id == ids["a"]?[1])
    }

    @Test(arguments: RepositoryKind.allCases)
    func theStoreCapsOneOwnersQueuedJobs(kind: RepositoryKind) async throws {
        let repository = try kind.make()
        for owner in ["a", "a", "b"] {
            var job = TestSupport.makeJob()
            job.owner = owner
            _ = try await repository.enqueue(job, maxQueueSize: 10, maxQueuedForOwner: 2)
        }
        var extra = TestSupport.makeJob()
        extra.owner = "a"
        await #expect(throws: OwnerQueueFull(queued: 2)) {
            try await repository.enqueue(extra, maxQueueSize: 10, maxQueuedForOwner: 2)
        }
        extra.owner = "b"
        _ = try await repository.enqueue(extra, maxQueueSize: 10, maxQueuedForOwner: 2)
    }
}
