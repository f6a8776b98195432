import Foundation
import Synchronization
import WSClient

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
    private let output = ServerOutput()
    private(set) var port: Int = 0

    /// Starts `infinitetalk serve --port 0 --log-level info --min-free-disk 0 <arguments>` and waits until it says
    /// where it listens. (The low-disk watermark is off, so the verdict never depends on the machine's free disk.)
    init(arguments: [String], timeout: Duration = .seconds(60)) async throws {
        process.executableURL = URL(fileURLWithPath: Self.binaryPath)
        // WSClient sends `Origin: ws://127.0.0.1` (no port), which is not the server's own page: allow it.
        process.arguments =
            [
                "serve", "--port", "0", "--log-level", "info", "--allowed-origins", "ws://127.0.0.1", "--min-free-disk",
                "0",
            ]
            + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: TestSupport.repositoryRoot)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        output.follow(pipe.fileHandleForReading)
        try process.run()
        let serving = await output.waitForLine(containing: "serving http://127.0.0.1:", timeout: timeout)
        guard let serving, let range = serving.range(of: "serving http://127.0.0.1:") else {
            throw ServerError(message: "the server did not start:\n\(log)")
        }
        port = Int(serving[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    struct ServerError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Everything the server printed so far.
    var log: String { output.text }
    var pid: Int32 { process.processIdentifier }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The first line of the server's output containing `text` (already printed or still to come); `nil` if the
    /// server ends or `timeout` (a guard against a hang) passes first.
    func waitForLog(containing text: String, timeout: Duration = .seconds(60)) async -> String? {
        await output.waitForLine(containing: text, timeout: timeout)
    }

    /// Waits for the server's own word that its engine is ready (its log line), not for a poll to see it.
    func waitUntilEngineReady(timeout: Duration = .seconds(120)) async -> Bool {
        await output.waitForLine(containing: "engine ready", timeout: timeout) != nil
    }

    /// Follows the server's `/ws` until job `id` has one of `statuses`.
    /// - Returns: whether it got there within `timeout` (which only guards against a hang).
    func waitForStatus(_ id: String, _ statuses: Set<String>, timeout: Duration = .seconds(180)) async throws -> Bool {
        try await waitForJob(id, timeout: timeout) { $0["status"]?.stringValue.map(statuses.contains) == true }
    }

    /// Follows the server's `/ws` until the status object of job `id` satisfies `condition`: after the connection's
    /// first message (the snapshot, so the server has this client) its current status is read, then its
    /// `status_update`s, so no change slips between the two.
    /// - Returns: whether it got there within `timeout` (which only guards against a hang).
    func waitForJob(
        _ id: String, timeout: Duration = .seconds(180), until condition: @escaping @Sendable (JSONValue) -> Bool
    ) async throws -> Bool {
        let reached = Mutex(false)
        let baseURL = baseURL
        _ = try? await TestSupport.withTimeout(timeout) {
            try await WebSocketClient.connect(url: "ws://127.0.0.1:\(self.port)/ws", logger: TestSupport.quietLogger) {
                inbound, _, _ in
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                _ = try await messages.next() // the snapshot
                var status = try Curl.request(baseURL + "/api/status/\(id)").json
                while !condition(status), let message = try await messages.next() {
                    guard case .text(let text) = message, let json = try? JSONValue.parse(text),
                        json["type"] == .string("status_update"), json["request_id"] == .string(id)
                    else { continue }
                    status = json
                }
                reached.withLock { $0 = condition(status) }
            }
        }
        return reached.withLock { $0 }
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

    /// Waits until none of `pids` runs any more. They are not this process's children (they were the killed
    /// server's), so there is no exit to wait on: this is the one wait that asks (every 100 ms) rather than being
    /// told, and `timeout` only guards against a hang.
    static func waitForExit(of pids: [Int32], timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while pids.contains(where: isAlive) {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(100))
        }
        return true
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

/// The server's output as it comes (stdout and stderr together), and waits for a line in it.
private final class ServerOutput: Sendable {
    private struct State {
        var text = ""
        var waiters: [UUID: (needle: String, continuation: CheckedContinuation<String?, Never>)] = [:]
        var isFinished = false
    }

    private let state = Mutex(State())

    var text: String { state.withLock { $0.text } }

    /// Reads `handle` to its end on a thread of its own, with blocking reads. Not a `readabilityHandler`: its
    /// dispatch source crashed libdispatch (`_dispatch_event_loop_drain`) when the killed server's pipe was closed
    /// while other tests' child processes were reusing descriptor numbers.
    func follow(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            // `availableData` returns what one read gets (blocking until the server writes), empty at the end.
            while case let data = handle.availableData, !data.isEmpty {
                append(String(decoding: data, as: UTF8.self))
            }
            finish()
        }
    }

    /// The first complete line containing `needle` (already printed or still to come); `nil` when the output ends
    /// or `timeout` passes first.
    func waitForLine(containing needle: String, timeout: Duration) async -> String? {
        let line = try? await TestSupport.withTimeout(timeout) {
            let id = UUID()
            return await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let answer: String?? = self.state.withLock { state in
                        if let line = Self.line(containing: needle, in: state.text) { return .some(line) }
                        if state.isFinished || Task.isCancelled { return .some(nil) }
                        state.waiters[id] = (needle, continuation)
                        return .none
                    }
                    if let answer { continuation.resume(returning: answer) }
                }
            } onCancel: {
                self.state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume(returning: nil)
            }
        }
        return line ?? nil
    }

    private func append(_ chunk: String) {
        let ready = state.withLock { state in
            state.text += chunk
            var ready: [(CheckedContinuation<String?, Never>, String)] = []
            for (id, waiter) in state.waiters {
                guard let line = Self.line(containing: waiter.needle, in: state.text) else { continue }
                ready.append((waiter.continuation, line))
                state.waiters[id] = nil
            }
            return ready
        }
        for (continuation, line) in ready { continuation.resume(returning: line) }
    }

    private func finish() {
        let waiters = state.withLock { state in
            state.isFinished = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.continuation.resume(returning: nil) }
    }

    private static func line(containing needle: String, in text: String) -> String? {
        text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().first { $0.contains(needle) }
            .map(String.init)
    }
}
