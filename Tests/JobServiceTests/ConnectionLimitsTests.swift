import Foundation
import HummingbirdTesting
import Testing

@testable import JobService

/// Hostile connections (issue 15): partial request heads, a flood of them, the connection cap, and heads too large
/// or too ambiguous to parse. Raw connections only; nothing here measures time: short configured timeouts, and the
/// tests wait for their effect (the answer, the server closing the connection).
@Suite struct ConnectionLimitsTests {
    /// Runs the service in process with `settings` and gives `body` its port.
    private func withServer(
        settings: [String: String] = [:], _ body: @escaping @Sendable (Int) async throws -> Void
    ) async throws {
        let configuration = TestSupport.configuration(engine: [], settings: settings)
        let service = try await buildApplication(
            configuration, repository: MemoryJobRepository(), engine: SilentEngine(hello: TestSupport.fakeEngineHello),
            logger: TestSupport.quietLogger)
        try await service.application.test(.live) { client in
            let port = try #require(client.port)
            try await TestSupport.withTimeout(.seconds(120)) { try await body(port) }
        }
    }

    @Test func theLimitsAreSettingsWithSafeDefaults() throws {
        let defaults = try ServiceConfiguration.resolve(environment: [:])
        #expect(defaults.connections.requestHeadTimeout == .seconds(10))
        #expect(defaults.connections.idleTimeout == .seconds(60))
        #expect(defaults.connections.maxConnections == 512)
        #expect(defaults.connections.maxHeaderBytes == 32 * 1024)
        #expect(defaults.connections.maxHeaderCount == 100)
        #expect(defaults.allowedHosts.isEmpty && defaults.allowedOrigins.isEmpty)
        let set = try ServiceConfiguration.resolve(
            environment: ["INFINITETALK_ALLOWED_ORIGINS": "https://a.example, https://b.example"],
            flags: ["max-header-bytes": "8K", "request-head-timeout": "500ms", "allowed-hosts": "studio.lan"])
        #expect(set.connections.maxHeaderBytes == 8192)
        #expect(set.connections.requestHeadTimeout == .milliseconds(500))
        #expect(set.allowedHosts == ["studio.lan"])
        #expect(set.allowedOrigins == ["https://a.example", "https://b.example"])
        for (flag, value) in [("max-connections", "0"), ("request-head-timeout", "0"), ("max-header-bytes", "100")] {
            #expect(throws: ConfigurationError.self, "\(flag)=\(value)") {
                try ServiceConfiguration.resolve(environment: [:], flags: [flag: value])
            }
        }
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout() async throws {
        try await withServer(settings: ["idle-timeout": "0.5s"]) { port in
            let connection = try await RawConnection(port: port)
            try await connection.send(Self.healthz)
            #expect(await connection.answer()?.status == 200)
            #expect(await connection.waitUntilClosed().isEmpty, "closed without another answer")
        }
    }

    private static let healthz = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"

    /// Whether `/healthz` answers 200 on a new connection. Under the short head timeouts of these tests a loaded
    /// machine may deliver the probe's own head too late (the server answers 408, or has closed the connection
    /// before the probe could write): then it asks again, on a new connection.
    private func healthzAnswers(port: Int) async throws -> Bool {
        for _ in 0..<10 {
            let connection = try await RawConnection(port: port)
            let sent = (try? await connection.send(Self.healthz)) != nil
            let status = sent ? await connection.answer()?.status : nil
            await connection.close()
            if status == 200 { return true }
        }
        return false
    }

    @Test func aConnectionThatSendsNoRequestHeadIsAnswered408AndClosed() async throws {
        try await withServer(settings: ["request-head-timeout": "0.5s"]) { port in
            let connection = try await RawConnection(port: port)
            let answer = try #require(await connection.answer())
            #expect(answer.status == 408)
            #expect(answer.json["error"]?["code"] == .string("request_timeout"))
            #expect(answer.header("Connection") == "close")
            _ = await connection.waitUntilClosed() // returns once the server has closed it
        }
    }

    @Test func aFloodOfPartialHeadsIsClosedByTheServerAndHealthzStillAnswers() async throws {
        try await withServer(settings: ["request-head-timeout": "0.5s"]) { port in
            let flood = try await withThrowingTaskGroup(of: RawConnection.self) { group in
                for _ in 0..<300 {
                    group.addTask {
                        let connection = try await RawConnection(port: port)
                        try? await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
                        return connection
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try await healthzAnswers(port: port), "while the flood holds its connections")
            // Every flood connection is closed by the server (after a 408, unless it came before the partial head).
            let answers = await withTaskGroup(of: String.self) { group in
                for connection in flood {
                    group.addTask { String(decoding: await connection.waitUntilClosed(), as: UTF8.self) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.count == 300)
            #expect(answers.allSatisfy { $0.isEmpty || $0.hasPrefix("HTTP/1.1 408 ") })
            #expect(try await healthzAnswers(port: port), "after the flood")
        }
    }

    struct BadHead: Sendable, CustomTestStringConvertible {
        let name: String
        let request: String
        let status: Int
        let code: String
        var testDescription: String { name }
    }

    static let badHeads: [BadHead] = [
        .init(
            name: "a 1 MB header field",
            request:
                "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: \(String(repeating: "a", count: 1 << 20))\r\n\r\n",
            status: 431, code: "headers_too_large"),
        .init(
            name: "150 header fields",
            request: "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                + (0..<150).map { "X-Field-\($0): \($0)\r\n" }.joined() + "\r\n",
            status: 431, code: "headers_too_large"),
        .init(
            name: "Content-Length: -5",
            request: "POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n",
            status: 400, code: "bad_request"),
        .init(
            name: "two Content-Length headers",
            request:
                "POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            status: 400, code: "bad_request"),
        .init(
            name: "chunked plus Content-Length",
            request: "POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            status: 400, code: "bad_request"),
        .init(
            name: "a garbage request line", request: "\u{16}\u{03}\u{01} not http at all\r\n\r\n", status: 400,
            code: "bad_request"),
    ]

    @Test(arguments: badHeads)
    func aHeadThatCannotBeTakenIsAnsweredWithJSONThenClosed(_ bad: BadHead) async throws {
        try await withServer { port in
            let connection = try await RawConnection(port: port)
            try await connection.send(bad.request)
            let answer = try #require(await connection.answer())
            #expect(answer.status == bad.status)
            #expect(answer.json["error"]?["code"] == .string(bad.code))
            #expect(answer.header("Content-Type")?.hasPrefix("application/json") == true)
            #expect(answer.header("Connection") == "close")
            await connection.close()
            #expect(try await healthzAnswers(port: port))
        }
    }

    @Test(.enabled(if: ServerProcess.binaryExists, "build the binary first: swift build --product infinitetalk"))
    func afterAFloodOfPartialHeadsTheServersMemoryReturnsNearItsBaseline() async throws {
        let server = try await ServerProcess(arguments: [
            "--data-dir", TestSupport.makeTemporaryDirectory("itk-flood"), "--request-head-timeout", "1s",
            "--engine-command", TestSupport.fakeEngineCommand(["--never-ready"]).joined(separator: " "),
        ])
        defer { server.terminate() }
        try await TestSupport.withTimeout(.seconds(120)) {
            #expect(try await healthzAnswers(port: server.port))
            let baseline = try Self.residentBytes(of: server.pid)
            let flood = try await withThrowingTaskGroup(of: RawConnection.self) { group in
                for _ in 0..<400 {
                    group.addTask {
                        let connection = try await RawConnection(port: server.port)
                        try? await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
                        return connection
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for connection in flood { _ = await connection.waitUntilClosed() }
            #expect(try await healthzAnswers(port: server.port))
            let after = try Self.residentBytes(of: server.pid)
            // Nothing is kept per closed connection: a flood that is over costs no more than allocator slack.
            #expect(after - baseline < 32 << 20, "resident memory grew from \(baseline) to \(after) bytes")
        }
    }

    /// The process's resident memory (VmRSS of /proc/<pid>/status) in bytes.
    private static func residentBytes(of pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    @Test(.enabled(if: ServerProcess.binaryExists, "build the binary first: swift build --product infinitetalk"))
    func atTheConnectionCapNewClientsWaitForAFreeSlotAndOneWarningIsLogged() async throws {
        let server = try await ServerProcess(arguments: [
            "--data-dir", TestSupport.makeTemporaryDirectory("itk-cap"), "--max-connections", "2",
            "--engine-command", TestSupport.fakeEngineCommand(["--never-ready"]).joined(separator: " "),
        ])
        defer { server.terminate() }
        try await TestSupport.withTimeout(.seconds(120)) {
            // Two keep-alive connections, each answered once: both are open on the server.
            let first = try await RawConnection(port: server.port)
            let second = try await RawConnection(port: server.port)
            for connection in [first, second] {
                try await connection.send(Self.healthz)
                #expect(await connection.answer()?.status == 200)
            }
            #expect(await server.waitForLog(containing: "connection limit reached") != nil)
            // A third client waits in the backlog until a connection closes, then is served.
            let third = try await RawConnection(port: server.port)
            try await third.send(Self.healthz)
            await first.close()
            #expect(await third.answer()?.status == 200)
            await second.close()
            await third.close()
        }
        #expect(server.log.components(separatedBy: "connection limit reached").count == 2, "one warning")
    }
}
