import Foundation
import Testing

@testable import JobService

/// One engine per GPU (`--gpus`): a pool is ready while any engine is, runs as many jobs as its ready engines have
/// slots, sends each job to an engine with a free slot, and keeps serving when one engine is down.
@Suite struct EnginePoolTests {
    /// An engine's hello with two slots (made here: no engine process is needed).
    private var hello: EngineHello {
        let line = #"""
            {"type": "hello", "protocol_version": 1, "engine": "test", "engine_version": "1",
             "capabilities": {"resolutions": ["480p"], "fps": 25, "max_concurrent_jobs": 2, "device": "cpu",
                              "is_preview": true}}
            """#.replacingOccurrences(of: "\n", with: " ")
        guard case .hello(let hello) = EngineEvent.parse(line) else { fatalError("not a hello: \(line)") }
        return hello
    }

    private func runPool(_ members: [any Engine]) async throws -> (EnginePool, Task<Void, Never>) {
        let pool = EnginePool(members: members.enumerated().map { (label: String($0.offset), engine: $0.element) })
        let running = Task { await pool.run() }
        try await TestSupport.withTimeout(.seconds(30)) {
            for await state in await pool.states() where state.hello != nil { return }
        }
        return (pool, running)
    }

    private func request(_ id: String) -> EngineJobRequest {
        EngineJobRequest(
            jobID: id, imagePath: "/i", audioPath: "/a", audio2Path: nil, outputPath: "/o", segmentsDirectory: nil,
            parameters: JobParameters(seed: 1))
    }

    @Test func thePoolRunsAsManyJobsAsItsEnginesTogetherAndSpreadsThem() async throws {
        let first = ScriptedEngine(hello: hello)
        let second = ScriptedEngine(hello: hello)
        let (pool, running) = try await runPool([first, second])
        let slots = hello.capabilities.maxConcurrentJobs
        #expect(await pool.engineConcurrency == 2 * slots)
        var streams: [AsyncStream<EngineJobEvent>] = []
        for index in 0..<(2 * slots) {
            streams.append(try #require(await pool.submit(request("job-\(index)"))))
        }
        #expect(await pool.submit(request("one-too-many")) == nil, "every slot is taken")
        // Each engine got its share
        for engine in [first, second] {
            for _ in 0..<slots { _ = try await engine.nextJob() }
        }
        let statuses = await pool.statuses()
        #expect(statuses.map(\.runningJobs) == [slots, slots])
        // A job that ends frees its slot for the next one
        await pool.cancel(jobID: "job-0")
        for await _ in streams[0] {}
        #expect(await pool.submit(request("next")) != nil)
        await pool.stop()
        await running.value
    }

    @Test func aLoRAIsAddedByOneEngineAndTheOthersReadTheirLibraryAgain() async throws {
        let engines = [ScriptedEngine(hello: hello), ScriptedEngine(hello: hello), ScriptedEngine(hello: hello)]
        let (pool, running) = try await runPool(engines)
        guard case .added(let listing) = await pool.addLora(name: "anime", path: "/uploads/anime") else {
            Issue.record("not added")
            return
        }
        #expect(listing.name == "anime")
        var added: [[String]] = []
        var rescans: [Int] = []
        for engine in engines {
            added.append(await engine.addedLoras)
            rescans.append(await engine.rescans)
        }
        #expect(added.filter { $0 == ["anime"] }.count == 1 && added.filter(\.isEmpty).count == 2)
        #expect(zip(added, rescans).allSatisfy { $0.0.isEmpty ? $0.1 == 1 : $0.1 == 0 })
        await pool.stop()
        await running.value
    }

    @Test func aPoolWithOneEngineDownServesOnTheOthers() async throws {
        let working = ScriptedEngine(hello: hello)
        let down = SilentEngine(hello: nil, ready: false)
        let (pool, running) = try await runPool([down, working])
        #expect(await pool.engineConcurrency == hello.capabilities.maxConcurrentJobs)
        let events = try #require(await pool.submit(request("job")))
        let job = try await working.nextJob()
        #expect(job.request.jobId == "job")
        let states = await pool.statuses().map(\.state.name)
        #expect(states == ["starting", "ready"])
        await pool.cancel(jobID: "job")
        for await _ in events {}
        await pool.stop()
        await running.value
    }

    @Test(arguments: [
        ("all", GPUSelection.all), ("3", .count(3)), ("device=1", .devices(["1"])),
        ("device=0,2", .devices(["0", "2"])),
        ("0,2", .devices(["0", "2"])),
    ])
    func gpuListsReadAsDockerWritesThem(text: String, selection: GPUSelection) throws {
        #expect(try GPUSelection.parse(text) == selection)
    }

    @Test func eachEngineSeesItsOwnGPU() throws {
        #expect(GPUSelection.inherited.visibleDevices() == [nil])
        #expect(GPUSelection.count(2).visibleDevices() == ["0", "1"])
        #expect(GPUSelection.all.visibleDevices(discover: { ["0", "1", "2"] }) == ["0", "1", "2"])
        #expect(GPUSelection.all.visibleDevices(discover: { [] }) == [nil], "no GPUs listed: one engine")
        #expect(throws: ConfigurationError.self) { try GPUSelection.parse("0") }
        #expect(throws: ConfigurationError.self) { try GPUSelection.parse("some") }
        var engine = EngineConfiguration()
        engine.visibleDevices = "2"
        #expect(engine.extraEnvironment["CUDA_VISIBLE_DEVICES"] == "2")
    }
}
