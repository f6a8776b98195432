import Foundation

/// Which GPUs get an engine process each (`--gpus`): every job then runs on one of them, and the service runs as
/// many jobs at once as the engines have slots together.
public enum GPUSelection: Sendable, Equatable {
    /// One engine that sees whatever the service sees (no `CUDA_VISIBLE_DEVICES` of its own). The default.
    case inherited
    /// Engines on GPUs 0 ... n-1 (also how to run several preview engines, which use no GPU).
    case count(Int)
    /// Engines on these GPUs (`device=0,2`), one each.
    case devices([String])
    /// One engine per GPU `nvidia-smi` lists; one engine as `inherited` when it lists none.
    case all

    /// `all`, a count (`3`), or GPU ids: `device=1`, `device=0,2`, `0,2`.
    static func parse(_ text: String) throws -> GPUSelection {
        let text = text.lowercased()
        if text == "all" { return .all }
        if let count = Int(text) {
            guard count >= 1 else { throw ConfigurationError(description: "at least 1 engine") }
            return .count(count)
        }
        let list = text.hasPrefix("device=") ? String(text.dropFirst(7)) : text
        let ids = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !ids.isEmpty, list.contains(",") || text.hasPrefix("device="),
            ids.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isNumber || $0.isLetter || $0 == "-" } })
        else { throw ConfigurationError(description: "expected all, a count (2) or GPU ids (device=0,2)") }
        return .devices(ids)
    }

    /// The `CUDA_VISIBLE_DEVICES` of each engine to start; `nil` leaves it as the service has it.
    /// - Parameter discover: the GPUs of this machine (for `all`).
    func visibleDevices(discover: () -> [String] = GPUSelection.nvidiaSMIGPUs) -> [String?] {
        switch self {
        case .inherited: return [nil]
        case .count(let count): return (0..<count).map { String($0) }
        case .devices(let ids): return ids
        case .all:
            let found = discover()
            return found.isEmpty ? [nil] : found
        }
    }

    /// The GPU indices `nvidia-smi` lists (none when it is missing or fails).
    static func nvidiaSMIGPUs() -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return []
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return [] }
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
