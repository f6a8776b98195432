import Foundation

/// Finds the repository root (the folder holding `engine/infinitetalk_engine`), which gives the default engine
/// python (`<repo>/.venv/bin/python`) and the default web folder (`<repo>/web`).
public enum RepositoryLocator {
    /// The first folder, walking up from each start in turn, that holds `engine/infinitetalk_engine`.
    public static func findRoot(from starts: [String]) -> String? {
        let fileManager = FileManager.default
        for start in starts {
            var folder = URL(fileURLWithPath: start).standardizedFileURL
            while true {
                let marker = folder.appendingPathComponent("engine/infinitetalk_engine").path
                var isDirectory: ObjCBool = false
                if fileManager.fileExists(atPath: marker, isDirectory: &isDirectory), isDirectory.boolValue {
                    return folder.path
                }
                let parent = folder.deletingLastPathComponent()
                if parent.path == folder.path { break }
                folder = parent
            }
        }
        return nil
    }

    /// The usual starts: the current directory, then the folder of the running executable
    /// (`<repo>/.build/release/infinitetalk` lies inside the repository).
    public static func defaultStarts() -> [String] {
        var starts = [FileManager.default.currentDirectoryPath]
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent().path
        if !executable.isEmpty { starts.append(executable) }
        return starts
    }
}

extension ServiceConfiguration {
    /// Fills what was left to defaults that depend on the repository: the web folder and the engine's folder.
    public mutating func locateRepository(root: String?) {
        guard let root else { return }
        if webDirectory == nil {
            webDirectory = (root as NSString).appendingPathComponent("web")
        }
        if engine.workingDirectory == nil {
            engine.workingDirectory = root
        }
        if engine.python == nil, engine.command == nil {
            engine.python = (root as NSString).appendingPathComponent(".venv/bin/python")
        }
    }
}

extension EngineConfiguration {
    /// The command line that starts the engine: `command` when given, else
    /// `<python> -m infinitetalk_engine --engine <name> [--weights W] [--device D] [--max-audio-seconds S]`.
    public var commandLine: [String] {
        if let command { return command }
        var arguments = [python ?? "python3", "-m", "infinitetalk_engine", "--engine", name]
        if let weights { arguments += ["--weights", weights] }
        if let device { arguments += ["--device", device] }
        if let maxAudioSeconds { arguments += ["--max-audio-seconds", String(maxAudioSeconds)] }
        if let loraDirectory { arguments += ["--engine-option", "lora_dir=\(loraDirectory)"] }
        return arguments
    }

    /// Environment added to the inherited one: unbuffered python, and the engine package on `PYTHONPATH` so
    /// `-m infinitetalk_engine` works even when the package is not installed into the venv.
    public var extraEnvironment: [String: String] {
        var environment = ["PYTHONUNBUFFERED": "1"]
        if let visibleDevices { environment["CUDA_VISIBLE_DEVICES"] = visibleDevices }
        if command == nil, let workingDirectory {
            let enginePath = (workingDirectory as NSString).appendingPathComponent("engine")
            let existing = ProcessInfo.processInfo.environment["PYTHONPATH"].map { ":" + $0 } ?? ""
            environment["PYTHONPATH"] = enginePath + existing
        }
        return environment
    }
}
