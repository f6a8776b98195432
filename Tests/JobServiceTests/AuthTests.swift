import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import JobService

/// API keys (`--auth on`): every `/api` route and `/ws` need one; a key sees and touches only its own jobs; an admin
/// key sees all; a revoked key is refused at once. In process, on an in-memory store, with an engine that never runs
/// jobs (they stay queued).
@Suite struct AuthTests {
    private func withAuthApp(
        _ body: @escaping @Sendable (InfiniteTalkService, any TestClientProtocol, AuthTestApp.Keys) async throws -> Void
    ) async throws {
        try await AuthTestApp.run(body)
    }

    private func bearer(_ token: String) -> HTTPFields { AuthTestApp.bearer(token) }

    private func submit(_ client: any TestClientProtocol, as token: String) async throws -> String {
        try await AuthTestApp.submit(client, as: token)
    }

    static let protectedRoutes: [(HTTPRequest.Method, String)] = [
        (.post, "/api/generate"), (.get, "/api/status/x"), (.get, "/api/requests/x"), (.get, "/api/queue"),
        (.get, "/api/requests"), (.delete, "/api/requests/x"), (.post, "/api/cancel/x"), (.get, "/api/result/x"),
        (.head, "/api/result/x"), (.get, "/api/result/x/live.m3u8"), (.get, "/api/result/x/live/init.mp4"),
        (.get, "/ws"),
    ]

    @Test func everyApiRouteAndTheWebSocketNeedAKey() async throws {
        try await withAuthApp { _, client, _ in
            for (method, uri) in Self.protectedRoutes {
                for headers: HTTPFields in [
                    [:], [.authorization: "Bearer itk_nosuchkey"], [.authorization: "Basic eDp5"],
                ] {
                    let response = try await client.execute(uri: uri, method: method, headers: headers)
                    #expect(response.status == .unauthorized, "\(method) \(uri) \(headers)")
                    #expect(response.headers[.wwwAuthenticate] == #"Bearer realm="infinitetalk""#)
                    if method != .head { #expect(response.json["error"]?["code"] == .string("unauthorized")) }
                }
            }
        }
    }

    @Test func thePageTheHealthChecksAndTheConfigAreOpen() async throws {
        try await withAuthApp { _, client, _ in
            for uri in ["/healthz", "/openapi.json", "/api/config"] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .ok, "\(uri)")
            }
            let config = try await client.execute(uri: "/api/config", method: .get)
            #expect(config.json["auth"]?["enabled"] == .bool(true))
        }
    }

    @Test func aKeyWorksAsABearerTokenOrAsTheSessionCookie() async throws {
        try await withAuthApp { _, client, keys in
            for headers: HTTPFields in [bearer(keys.alice), [.cookie: "theme=dark; infinitetalk_key=\(keys.alice)"]] {
                let response = try await client.execute(uri: "/api/requests", method: .get, headers: headers)
                #expect(response.status == .ok)
            }
        }
    }

    @Test func anotherKeysJobIsUnknownEverywhere() async throws {
        try await withAuthApp { _, client, keys in
            let id = try await submit(client, as: keys.alice)
            for (method, uri) in [
                (HTTPRequest.Method.get, "/api/status/\(id)"), (.get, "/api/requests/\(id)"),
                (.get, "/api/result/\(id)"), (.get, "/api/result/\(id)/live.m3u8"),
                (.get, "/api/result/\(id)/live/init.mp4"), (.delete, "/api/requests/\(id)"),
                (.post, "/api/cancel/\(id)"),
            ] {
                let response = try await client.execute(uri: uri, method: method, headers: bearer(keys.bob))
                #expect(response.status == .notFound, "\(method) \(uri)")
                #expect(response.json["error"]?["code"] == .string("not_found"))
            }
            // The owner still sees it queued: Bob's cancel did nothing
            let own = try await client.execute(uri: "/api/status/\(id)", method: .get, headers: bearer(keys.alice))
            #expect(own.json["status"] == .string("queued"))
        }
    }

    @Test func historyAndQueueShowOnlyTheKeysOwnJobsButAnAdminSeesAll() async throws {
        try await withAuthApp { _, client, keys in
            let alices = try await submit(client, as: keys.alice)
            let bobs = try await submit(client, as: keys.bob)
            func ids(_ token: String, _ uri: String) async throws -> Set<String> {
                let response = try await client.execute(uri: uri, method: .get, headers: bearer(token))
                #expect(response.status == .ok)
                return Set(response.json["requests"]?.arrayValue?.compactMap { $0["request_id"]?.stringValue } ?? [])
            }
            #expect(try await ids(keys.alice, "/api/requests") == [alices])
            #expect(try await ids(keys.bob, "/api/requests") == [bobs])
            #expect(try await ids(keys.admin, "/api/requests") == [alices, bobs])
            #expect(try await ids(keys.alice, "/api/queue") == [alices])
            #expect(try await ids(keys.admin, "/api/queue") == [alices, bobs])
            let queue = try await client.execute(uri: "/api/queue", method: .get, headers: bearer(keys.alice))
            #expect(queue.json["queue_size"] == .integer(2), "counts are whole")
            let total = try await client.execute(uri: "/api/requests", method: .get, headers: bearer(keys.bob))
            #expect(total.json["total"] == .integer(1))
        }
    }

    @Test func aRevokedKeyIsRefusedAtOnce() async throws {
        try await withAuthApp { service, client, keys in
            let before = try await client.execute(uri: "/api/requests", method: .get, headers: bearer(keys.alice))
            #expect(before.status == .ok)
            _ = try await service.keys.revoke(id: keys.aliceKey.id, now: Date())
            let after = try await client.execute(uri: "/api/requests", method: .get, headers: bearer(keys.alice))
            #expect(after.status == .unauthorized)
            #expect(after.json["error"]?["message"]?.stringValue?.contains("revoked") == true)
        }
    }

    @Test func metricsNeedAnAdminKey() async throws {
        try await withAuthApp { _, client, keys in
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .unauthorized)
            let user = try await client.execute(uri: "/metrics", method: .get, headers: bearer(keys.alice))
            #expect(user.status == .forbidden)
            let admin = try await client.execute(uri: "/metrics", method: .get, headers: bearer(keys.admin))
            #expect(admin.status == .ok)
        }
    }

    @Test func theServerRefusesToStartOpenOnANonLoopbackAddressUnlessTold() throws {
        #expect(throws: ConfigurationError.self) {
            try ServiceConfiguration.resolve(environment: [:], flags: ["host": "0.0.0.0"])
        }
        #expect(
            try ServiceConfiguration.resolve(environment: [:], flags: ["host": "0.0.0.0", "auth": "off"]).authEnabled
                == false)
        #expect(
            try ServiceConfiguration.resolve(environment: [:], flags: ["host": "0.0.0.0", "auth": "on"]).authEnabled)
        #expect(try ServiceConfiguration.resolve(environment: [:], flags: [:]).authEnabled == false)
    }

    // MARK: - WebSocket fan-out

    private func liveClient(_ broadcaster: ProgressBroadcaster, onlyOwner: String?) async throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).get()
        broadcaster.goLive(broadcaster.subscribe(channel, onlyOwner: onlyOwner))
        return channel
    }

    private func texts(_ channel: EmbeddedChannel) throws -> [String] {
        channel.embeddedEventLoop.run()
        var texts: [String] = []
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
            texts.append(String(buffer: frame.unmaskedData))
        }
        return texts
    }

    @Test func aKeysWebSocketHearsOnlyOfItsOwnJobsAndGetsWholeCounts() async throws {
        let broadcaster = ProgressBroadcaster()
        let alice = try await liveClient(broadcaster, onlyOwner: "key_a")
        let everyone = try await liveClient(broadcaster, onlyOwner: nil)
        let queue = QueueUpdateMessage(
            timestamp: Date(timeIntervalSince1970: 0), queueSize: 2, processingCount: 0, maxQueueSize: 10,
            maxConcurrent: 1, queuedIds: ["job-a", "job-b"], processingIds: [],
            owners: ["job-a": "key_a", "job-b": "key_b"])
        broadcaster.broadcast(["about": "b"], aboutJobOf: "key_b", then: queue)
        broadcaster.broadcast(["about": "a"], aboutJobOf: "key_a")
        let heard = try texts(alice)
        #expect(heard.count == 2)
        #expect(heard[0].contains(#""queued_ids":["job-a"]"#) && heard[0].contains(#""queue_size":2"#))
        #expect(heard[1] == #"{"about":"a"}"#)
        let all = try texts(everyone)
        #expect(all.count == 3 && all[1].contains(#""queued_ids":["job-a","job-b"]"#))
    }
}
