import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import JobService

/// A service with `--auth on`, in process, on an in-memory store, with an engine that never runs jobs (they stay
/// queued), and three keys: alice and bob (users) and root (admin).
enum AuthTestApp {
    struct Keys {
        let alice: String
        let bob: String
        let admin: String
        let aliceKey: APIKey
    }

    /// - Parameters:
    ///   - settings: more settings (flag → value).
    ///   - aliceLimits: alice's own submit rate per minute and queued-job cap.
    ///   - engine: the engine (default: one that never runs jobs).
    static func run(
        settings: [String: String] = [:], clock: any ServiceClock = SystemClock(),
        aliceLimits: (rate: Double?, maxQueued: Int?) = (nil, nil), engine: (any Engine)? = nil,
        _ body: @escaping @Sendable (InfiniteTalkService, any TestClientProtocol, Keys) async throws -> Void
    ) async throws {
        let configuration = TestSupport.configuration(
            engine: [], settings: settings.merging(["auth": "on"]) { mine, _ in mine })
        let service = try await buildApplication(
            configuration, repository: MemoryJobRepository(),
            engine: engine ?? SilentEngine(hello: TestSupport.fakeEngineHello),
            clock: clock, logger: TestSupport.quietLogger)
        var tokens: [String] = []
        var aliceKey: APIKey?
        for (name, role) in [("alice", APIKeyRole.user), ("bob", .user), ("root", .admin)] {
            let limits: (rate: Double?, maxQueued: Int?) = name == "alice" ? aliceLimits : (nil, nil)
            let (key, token) = APIKey.generate(
                name: name, role: role, ratePerMinute: limits.rate, maxQueued: limits.maxQueued)
            try await service.keys.insert(key)
            tokens.append(token)
            if name == "alice" { aliceKey = key }
        }
        let keys = Keys(alice: tokens[0], bob: tokens[1], admin: tokens[2], aliceKey: aliceKey!)
        try await service.application.test(.router) { client in
            try await body(service, client, keys)
        }
    }

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    /// Submits a valid job as `token`.
    static func submitResponse(
        _ client: any TestClientProtocol, as token: String, form: MultipartForm? = nil, headers more: HTTPFields = [:]
    ) async throws -> TestResponse {
        let form = try form ?? MultipartForm.valid()
        var headers = form.headers
        headers[.authorization] = "Bearer \(token)"
        headers.append(contentsOf: more)
        return try await client.execute(uri: "/api/generate", method: .post, headers: headers, body: form.body)
    }

    /// Submits a valid job as `token`; expects it queued.
    /// - Returns: its id.
    static func submit(_ client: any TestClientProtocol, as token: String) async throws -> String {
        let response = try await submitResponse(client, as: token)
        #expect(response.status == .ok, "\(response.json)")
        return try #require(response.json["request_id"]?.stringValue)
    }
}
