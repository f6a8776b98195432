import Foundation
import Testing

@testable import JobService

/// `waitForHello`: what a submission waits on before its options can be checked. It ends on the engine's word or on
/// the engine's failure, and gives up only when the supervisor's clock passed the timeout.
@Suite struct EngineHelloTests {
    /// Runs a supervisor of `command` on a manual clock around `body`.
    private func withEngine(
        _ command: [String], _ body: @escaping @Sendable (EngineSupervisor, ManualClock) async throws -> Void
    ) async throws {
        let clock = ManualClock()
        let configuration = TestSupport.configuration(engine: command)
        let engine = EngineSupervisor(
            configuration: configuration.engine, logger: TestSupport.quietLogger, clock: clock)
        let running = Task { await engine.run() }
        defer { running.cancel() }
        try await body(engine, clock)
        // (cancelled, not only stopped: a restart pause on this clock would never end)
        await engine.stop(timeout: .zero)
        running.cancel()
        await running.value
    }

    @Test func theHelloIsReturnedAsSoonAsTheEngineSaysIt() async throws {
        try await withEngine(TestSupport.fakeEngineCommand(["--never-ready", "--resolutions", "720p"])) { engine, _ in
            // No time passes on the clock: the hello itself ends the wait
            let hello = await engine.waitForHello(timeout: .seconds(30))
            #expect(hello?.capabilities.resolutions == ["720p"])
        }
    }

    @Test func anEngineThatFailsBeforeItsHelloEndsTheWaitAtOnce() async throws {
        try await withEngine(["sh", "-c", "exit 3"]) { engine, _ in
            #expect(await engine.waitForHello(timeout: .seconds(30)) == nil)
        }
    }

    @Test func aSilentEngineIsGivenUpOnWhenTheTimeoutPassed() async throws {
        try await withEngine(["sleep", "600"]) { engine, clock in
            async let hello = engine.waitForHello(timeout: .seconds(30))
            await clock.waitForSleeper(lasting: .seconds(30))
            clock.advance(by: .seconds(31))
            #expect(await hello == nil)
        }
    }
}
