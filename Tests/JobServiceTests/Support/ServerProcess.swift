import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The built `infinitetalk` binary run as a separate process (so a test can `kill -9` it), and a small curl-based
/// HTTP client for it.
final class ServerProcess: @unchecked Sendable {
    /// `.build/<config>/infinitetalk`, beside the test bundle.
    static var binaryPath: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("infinitetalk").path
    }

    static var binaryExists: Bool { FileManager.default.isExecutableFile(atPath: binaryPath) }

    let process = Process()
    let logPath: String
    private(set) var port: Int = 0

    /// Starts `infinitetalk serve --port 0 <arguments>` and waits until it listens.
    init(arguments: [String], timeout: Duration = .seconds(60)) async throws {
        logPath = TestSupport.makeTemporaryDirectory("itk-log") + "/server.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binaryPath)
        process.arguments = ["serve", "--port", "0"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: TestSupport.repositoryRoot)
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let listening = try await ServerProcess.poll(timeout: timeout) { self.readPort() }
        guard listening else { throw ServerError(message: "the server did not start:\n\(self.log)") }
    }

    struct ServerError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var pid: Int32 { process.processIdentifier }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    private func readPort() -> Bool {
        guard let range = log.range(of: "serving http://127.0.0.1:") else { return false }
        port = Int(log[range.upperBound...].prefix { $0.isNumber }) ?? 0
        return port > 0
    }

    /// Asks until `condition` holds or `timeout` passes. Only for another process (the built binary, its engine),
    /// which can only be asked; in-process tests wait on notifications instead.
    static func poll(timeout: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    /// `kill -9`: no chance to clean up.
    func killHard() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then waits for the exit.
    func terminate() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        process.waitUntilExit()
    }

    /// Process ids whose parent is this server (the engine).
    func childProcessIDs() -> [Int32] {
        Self.processIDs(withParent: pid)
    }

    static func processIDs(withParent parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { candidate in
            guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent
        }
    }

    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}

/// Minimal HTTP through curl (keeps the test target free of an HTTP client dependency).
enum Curl {
    struct Response {
        let status: Int
        let body: Data
        var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
    }

    static func request(_ url: String, method: String = "GET", form: [(String, String)] = []) throws -> Response {
        let bodyPath = TestSupport.makeTemporaryDirectory("itk-curl") + "/body"
        var arguments = ["curl", "-s", "-o", bodyPath, "-w", "%{http_code}", "-X", method]
        for (name, value) in form { arguments += ["-F", "\(name)=\(value)"] }
        arguments.append(url)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let status = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let body = (try? Data(contentsOf: URL(fileURLWithPath: bodyPath))) ?? Data()
        return Response(status: Int(status) ?? 0, body: body)
    }
}
