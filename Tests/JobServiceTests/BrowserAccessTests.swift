import Foundation
import HummingbirdTesting
import Testing

@testable import JobService

/// Pages the local user visits must not use a local install (issue 15): `Host` against DNS rebinding, `Origin` on
/// `/ws` and on every state-changing request, no CORS.
@Suite struct BrowserAccessTests {
    private func policy(_ settings: [String: String] = [:]) -> BrowserAccessPolicy {
        BrowserAccessPolicy(configuration: TestSupport.configuration(engine: [], settings: settings))
    }

    private func refusalCode(
        _ policy: BrowserAccessPolicy, method: String = "GET", host: String?, origin: String? = nil,
        isUpgrade: Bool = false
    ) -> String? {
        policy.refusal(method: method, host: host, origin: origin, isUpgrade: isUpgrade)?.code
    }

    // MARK: - Host

    @Test func boundToLoopbackOnlyLoopbackNamesAndIPAddressesAreAccepted() {
        let loopback = policy()
        for host in ["localhost", "localhost:8000", "app.localhost:8000", "127.0.0.1:8000", "[::1]:8000", "10.0.0.7"] {
            #expect(refusalCode(loopback, host: host) == nil, "\(host)")
        }
        #expect(refusalCode(loopback, host: nil) == nil, "no Host (HTTP/1.0 programs)")
        for host in ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io"] {
            #expect(refusalCode(loopback, host: host) == "forbidden_host", "\(host)")
        }
    }

    @Test func allowedHostsAreAcceptedToo() {
        let studio = policy(["allowed-hosts": "studio.lan, render.example"])
        #expect(refusalCode(studio, host: "studio.lan:8000") == nil)
        #expect(refusalCode(studio, host: "RENDER.example") == nil)
        #expect(refusalCode(studio, host: "evil.example") == "forbidden_host")
    }

    @Test func boundToAnotherAddressHostIsFreeUnlessAllowedHostsAreSet() {
        #expect(refusalCode(policy(["host": "0.0.0.0"]), host: "evil.example") == nil)
        let listed = policy(["host": "0.0.0.0", "allowed-hosts": "studio.lan"])
        #expect(refusalCode(listed, host: "evil.example") == "forbidden_host")
        #expect(refusalCode(listed, host: "studio.lan") == nil)
    }

    // MARK: - Origin

    @Test func stateChangingRequestsAndUpgradesNeedTheServersOwnOrAnAllowedOrigin() {
        let local = policy(["allowed-origins": "https://app.example"])
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            #expect(
                refusalCode(local, method: method, host: "127.0.0.1:8000", origin: "https://evil.example")
                    == "forbidden_origin")
            #expect(refusalCode(local, method: method, host: "127.0.0.1:8000", origin: "http://127.0.0.1:8000") == nil)
        }
        #expect(
            refusalCode(local, host: "localhost:8000", origin: "https://evil.example", isUpgrade: true)
                == "forbidden_origin")
        #expect(refusalCode(local, host: "localhost:8000", origin: "http://localhost:8000", isUpgrade: true) == nil)
        // Same host, another port (another local app) is another origin; `null` (sandboxed frames) is refused.
        #expect(
            refusalCode(local, method: "POST", host: "localhost:8000", origin: "http://localhost:3000")
                == "forbidden_origin")
        #expect(refusalCode(local, method: "POST", host: "localhost:8000", origin: "null") == "forbidden_origin")
        // Default ports: `Host: localhost` is port 80 for an http page.
        #expect(refusalCode(local, method: "POST", host: "localhost", origin: "http://localhost") == nil)
        #expect(refusalCode(local, method: "POST", host: "localhost:8000", origin: "https://app.example") == nil)
        // Programs send no Origin; reads are not checked (without CORS a foreign page cannot read them).
        #expect(refusalCode(local, method: "POST", host: "localhost:8000", origin: nil) == nil)
        #expect(refusalCode(local, method: "GET", host: "localhost:8000", origin: "https://evil.example") == nil)
    }

    // MARK: - Through the server

    private func withServer(_ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        let configuration = TestSupport.configuration(engine: [])
        let service = try await buildApplication(
            configuration, repository: MemoryJobRepository(), engine: SilentEngine(hello: TestSupport.fakeEngineHello),
            logger: TestSupport.quietLogger)
        try await service.application.test(.live) { client in
            let port = try #require(client.port)
            try await TestSupport.withTimeout(.seconds(60)) { try await body(port) }
        }
    }

    private func exchange(_ port: Int, _ request: String) async throws -> RawConnection.Answer? {
        let connection = try await RawConnection(port: port)
        try await connection.send(request)
        let answer = await connection.answer()
        await connection.close()
        return answer
    }

    private static func upgrade(port: Int, origin: String) -> String {
        "GET /ws HTTP/1.1\r\nHost: localhost:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: \(origin)\r\n\r\n"
    }

    @Test func aWebSocketFromAForeignPageIsRefused() async throws {
        try await withServer { port in
            let foreign = try #require(
                try await exchange(port, Self.upgrade(port: port, origin: "https://evil.example")))
            #expect(foreign.status == 403)
            #expect(foreign.json["error"]?["code"] == .string("forbidden_origin"))
            let own = try await exchange(port, Self.upgrade(port: port, origin: "http://localhost:\(port)"))
            #expect(own?.status == 101)
        }
    }

    @Test func cancellingFromAForeignPageIsRefused() async throws {
        try await withServer { port in
            let id = UUID().uuidString.lowercased()
            for (method, path) in [("POST", "/api/cancel/\(id)"), ("DELETE", "/api/requests/\(id)")] {
                let head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Length: 0\r\n"
                let foreign = try await exchange(port, head + "Origin: https://evil.example\r\n\r\n")
                #expect(foreign?.status == 403)
                #expect(foreign?.json["error"]?["code"] == .string("forbidden_origin"))
                // The page's own origin gets through to the route (no such job here).
                let own = try await exchange(port, head + "Origin: http://127.0.0.1:\(port)\r\n\r\n")
                #expect(own?.json["error"]?["code"] == .string("not_found"))
            }
        }
    }

    @Test func aForeignHostIsRefusedAndNoCORSHeadersAreSent() async throws {
        try await withServer { port in
            let rebound = try await exchange(port, "GET /api/queue HTTP/1.1\r\nHost: evil.example:\(port)\r\n\r\n")
            #expect(rebound?.status == 403)
            #expect(rebound?.json["error"]?["code"] == .string("forbidden_host"))
            let read = try #require(
                try await exchange(
                    port, "GET /api/queue HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n\r\n"))
            #expect(read.status == 200)
            #expect(read.header("Access-Control-Allow-Origin") == nil)
        }
    }
}
