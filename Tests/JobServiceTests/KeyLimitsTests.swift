import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import JobService

/// Fair limits per API key: a token-bucket submit rate (429 `rate_limited`) and a cap on queued jobs (429
/// `key_queue_full`), each with `Retry-After`; a key's own limits win over the server's defaults; other keys are
/// not affected. Time is a manual clock.
@Suite struct KeyLimitsTests {
    @Test func aKeyOverItsRateIsToldWhenToComeBack() async throws {
        let clock = ManualClock()
        try await AuthTestApp.run(clock: clock, aliceLimits: (rate: 2, maxQueued: nil)) { _, client, keys in
            for _ in 0..<2 { _ = try await AuthTestApp.submit(client, as: keys.alice) }
            let refused = try await AuthTestApp.submitResponse(client, as: keys.alice)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.json["error"]?["code"] == .string("rate_limited"))
            let retryAfter = try #require(refused.headers[.retryAfter].flatMap { Int($0) })
            #expect(retryAfter == 30, "2 a minute: one more after 30 s")
            // Bob has his own bucket.
            _ = try await AuthTestApp.submit(client, as: keys.bob)
            clock.advance(by: .seconds(retryAfter))
            _ = try await AuthTestApp.submit(client, as: keys.alice)
        }
    }

    @Test func theServersDefaultRateAppliesToKeysWithoutTheirOwn() async throws {
        try await AuthTestApp.run(settings: ["key-rate": "1/min"], clock: ManualClock()) { _, client, keys in
            _ = try await AuthTestApp.submit(client, as: keys.bob)
            let refused = try await AuthTestApp.submitResponse(client, as: keys.bob)
            #expect(refused.json["error"]?["code"] == .string("rate_limited"))
            #expect(refused.headers[.retryAfter] == "60")
        }
    }

    @Test func aKeyWhoseRateIsOffIsNotLimitedByTheDefault() async throws {
        let clock = ManualClock()
        try await AuthTestApp.run(settings: ["key-rate": "1/min"], clock: clock, aliceLimits: (rate: 0, maxQueued: nil))
        { _, client, keys in
            for _ in 0..<3 { _ = try await AuthTestApp.submit(client, as: keys.alice) }
        }
    }

    @Test func aKeyWithItsMostJobsQueuedIsRefusedUntilOneStarts() async throws {
        try await AuthTestApp.run(clock: ManualClock(), aliceLimits: (rate: nil, maxQueued: 2)) { _, client, keys in
            for _ in 0..<2 { _ = try await AuthTestApp.submit(client, as: keys.alice) }
            let refused = try await AuthTestApp.submitResponse(client, as: keys.alice)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.json["error"]?["code"] == .string("key_queue_full"))
            #expect(refused.headers[.retryAfter].flatMap { Int($0) } != nil)
            _ = try await AuthTestApp.submit(client, as: keys.bob)
        }
    }

    @Test func withoutKeysThereAreNoPerKeyLimits() async throws {
        let limits = KeyLimits(
            configuration: try ServiceConfiguration.resolve(environment: [:], flags: ["key-rate": "1/min"]),
            clock: ManualClock())
        for _ in 0..<5 { try limits.takeSubmit(for: .anonymous) }
        #expect(limits.maxQueued(for: .anonymous) == nil)
    }

    @Test func ratesReadAsPeopleWriteThem() throws {
        #expect(try parseRate("30") == 30)
        #expect(try parseRate("30/min") == 30)
        #expect(try parseRate("1/s") == 60)
        #expect(try parseRate("600/h") == 10)
        #expect(try parseRate("off") == nil)
        #expect(throws: ConfigurationError.self) { try parseRate("fast") }
        #expect(throws: ConfigurationError.self) { try parseRate("0") }
    }
}
