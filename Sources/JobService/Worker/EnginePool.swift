import Foundation

/// Several engines (one process per GPU, `--gpus`) seen as one: the worker runs as many jobs at once as the ready
/// engines have slots together, and each job goes to the ready engine with the most free slots. One engine crashing
/// or hanging fails only its own jobs (they are retried like any engine failure); the others keep serving.
public actor EnginePool: Engine {
    /// The engines, with a label each (the GPU they run on).
    public let members: [(label: String, engine: any Engine)]
    private var memberStates: [EngineState]
    private var jobsOnMember: [Int: Set<String>] = [:]
    private var memberOfJob: [String: Int] = [:]
    private let observers = Observers<EngineState>()
    public private(set) var state: EngineState = .starting

    public init(members: [(label: String, engine: any Engine)]) {
        precondition(!members.isEmpty, "a pool needs at least one engine")
        self.members = members
        memberStates = Array(repeating: .starting, count: members.count)
    }

    /// The first engine's hello, with `max_concurrent_jobs` the sum of the ready engines' slots (at least 1).
    public var lastHello: EngineHello? {
        get async {
            var base: EngineHello?
            for member in members {
                if let hello = await member.engine.lastHello {
                    base = hello
                    break
                }
            }
            guard var hello = base else { return nil }
            hello.capabilities.maxConcurrentJobs = max(1, await readySlots().reduce(0) { $0 + $1.slots })
            return hello
        }
    }

    public var restartCount: Int {
        get async {
            var total = 0
            for member in members { total += await member.engine.restartCount }
            return total
        }
    }

    public func waitForHello(timeout: Duration) async -> EngineHello? {
        await withTaskGroup(of: EngineHello?.self) { group in
            for member in members { group.addTask { await member.engine.waitForHello(timeout: timeout) } }
            for await hello in group where hello != nil {
                group.cancelAll()
                return await lastHello
            }
            return nil
        }
    }

    public func states() -> AsyncStream<EngineState> {
        observers.stream(startingWith: state)
    }

    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            for (index, member) in members.enumerated() {
                group.addTask { await member.engine.run() }
                group.addTask {
                    for await state in await member.engine.states() { await self.memberChanged(index, to: state) }
                }
            }
        }
        observers.finish()
    }

    public func stop(timeout: Duration) {
        for member in members {
            let engine = member.engine
            Task { await engine.stop(timeout: timeout) }
        }
    }

    public func submit(_ request: EngineJobRequest) async -> AsyncStream<EngineJobEvent>? {
        let candidates = await readySlots().filter { $0.slots > (jobsOnMember[$0.index]?.count ?? 0) }
        let ranked = candidates.sorted {
            ($0.slots - (jobsOnMember[$0.index]?.count ?? 0)) > ($1.slots - (jobsOnMember[$1.index]?.count ?? 0))
        }
        for candidate in ranked {
            guard let events = await members[candidate.index].engine.submit(request) else { continue }
            jobsOnMember[candidate.index, default: []].insert(request.jobId)
            memberOfJob[request.jobId] = candidate.index
            return forward(events, of: request.jobId, on: candidate.index)
        }
        return nil
    }

    public func cancel(jobID: String) async {
        guard let index = memberOfJob[jobID] else { return }
        await members[index].engine.cancel(jobID: jobID)
    }

    /// One ready engine checks and adds the file; the others (which share the library folder) then read it again.
    public func addLora(name: String, path: String) async -> LoraAddition {
        guard let first = await readySlots().first else { return .engineUnavailable }
        let outcome = await members[first.index].engine.addLora(name: name, path: path)
        if case .added = outcome {
            for (index, member) in members.enumerated() where index != first.index { await member.engine.rescanLoras() }
        }
        return outcome
    }

    public func rescanLoras() async {
        for member in members { await member.engine.rescanLoras() }
    }

    /// Each engine as clients see it (`/api/config`, `/readyz`, `/metrics`).
    public func statuses() async -> [EngineInstanceStatus] {
        var statuses: [EngineInstanceStatus] = []
        for (index, member) in members.enumerated() {
            statuses.append(
                EngineInstanceStatus(
                    index: index, gpu: member.label, state: await member.engine.state,
                    slots: await member.engine.lastHello?.capabilities.maxConcurrentJobs,
                    restarts: await member.engine.restartCount, runningJobs: jobsOnMember[index]?.count ?? 0))
        }
        return statuses
    }

    // MARK: - Private

    private func forward(_ events: AsyncStream<EngineJobEvent>, of jobID: String, on index: Int)
        -> AsyncStream<EngineJobEvent>
    {
        let (stream, sink) = AsyncStream.makeStream(of: EngineJobEvent.self)
        Task {
            for await event in events { sink.yield(event) }
            self.jobEnded(jobID, on: index)
            sink.finish()
        }
        return stream
    }

    private func jobEnded(_ jobID: String, on index: Int) {
        jobsOnMember[index]?.remove(jobID)
        memberOfJob[jobID] = nil
    }

    /// The ready engines and how many jobs each takes.
    private func readySlots() async -> [(index: Int, slots: Int)] {
        var ready: [(index: Int, slots: Int)] = []
        for (index, member) in members.enumerated() {
            if case .ready(let hello) = await member.engine.state {
                ready.append((index, hello.capabilities.maxConcurrentJobs))
            }
        }
        return ready
    }

    private func memberChanged(_ index: Int, to newState: EngineState) async {
        memberStates[index] = newState
        // Ready when any engine is ready (its hello, with the pool's slots); else starting while any starts; else
        // unavailable, naming each engine's reason; stopped once all stopped.
        let aggregate: EngineState
        if memberStates.contains(where: { $0.hello != nil }), let hello = await lastHello {
            aggregate = .ready(hello)
        } else if memberStates.contains(.starting) {
            aggregate = .starting
        } else if memberStates.allSatisfy({ $0 == .stopped }) {
            aggregate = .stopped
        } else {
            let reasons = memberStates.enumerated().compactMap { index, state -> String? in
                if case .unavailable(let reason) = state { return "GPU \(members[index].label): \(reason)" }
                return nil
            }
            aggregate = .unavailable(reason: reasons.joined(separator: "; "))
        }
        guard aggregate != state else { return }
        state = aggregate
        observers.yield(aggregate)
    }
}

/// One engine of a pool as clients see it.
public struct EngineInstanceStatus: Sendable, Equatable {
    public var index: Int
    /// The GPU it runs on (its `CUDA_VISIBLE_DEVICES`); `nil` for a single engine given no GPU list.
    public var gpu: String?
    public var state: EngineState
    /// Jobs it runs at once (its hello's `max_concurrent_jobs`); `nil` before its first hello.
    public var slots: Int?
    public var restarts: Int
    /// Jobs it runs now (known for the engines of a pool).
    public var runningJobs: Int?
}
