import ArgumentParser
import Foundation
import JobService
import Logging
import Synchronization
import Uploads

/// `infinitetalk serve` (the HTTP service) and `infinitetalk generate` (one video on the command line).
@main
struct InfiniteTalk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infinitetalk",
        abstract: "Audio-driven talking video: serve the HTTP API, or generate one video.",
        subcommands: [Serve.self, Generate.self, Keys.self, WebhookSecret.self],
        defaultSubcommand: Serve.self)
}

/// The service settings (`ConfigurationSetting.all`) as `--flag value` pairs: one table drives the flags, the
/// environment variables and the docs, so they cannot drift apart.
struct SettingsOptions: ParsableArguments {
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Settings, see below.", valueName: "--setting value"))
    var settings: [String] = []

    static let discussion: String = {
        var lines = ["Settings (flag, environment variable; flags win):"]
        for setting in ConfigurationSetting.all {
            lines.append("  --\(setting.flag) <value>  [\(setting.environmentVariable)]")
            lines.append("      \(setting.help)")
        }
        return lines.joined(separator: "\n")
    }()

    /// Reads the settings from the environment, then the flags, and fills repository-relative defaults.
    func resolve() throws -> ServiceConfiguration {
        let known = Set(ConfigurationSetting.all.map(\.flag))
        var flags: [String: String] = [:]
        var index = 0
        while index < settings.count {
            let argument = settings[index]
            guard argument.hasPrefix("--") else { throw ValidationError("Unexpected argument `\(argument)`.") }
            var name = String(argument.dropFirst(2))
            var value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else {
                index += 1
                guard index < settings.count else { throw ValidationError("Missing value for --\(name).") }
                value = settings[index]
            }
            guard known.contains(name) else { throw ValidationError("Unknown option --\(name). See --help.") }
            flags[name] = value
            index += 1
        }
        do {
            var configuration = try ServiceConfiguration.resolve(
                environment: ProcessInfo.processInfo.environment,
                flags: flags)
            configuration.locateRepository(root: RepositoryLocator.findRoot(from: RepositoryLocator.defaultStarts()))
            return configuration
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }
}

func makeLogger(level: String) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = Logger.Level(rawValue: level) ?? .info
        return handler
    }
    return Logger(label: "infinitetalk")
}

// MARK: - serve

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the HTTP API, the WebSocket and the web page.",
        discussion: SettingsOptions.discussion)

    @OptionGroup var options: SettingsOptions

    func run() async throws {
        let configuration = try options.resolve()
        let logger = makeLogger(level: configuration.logLevel)
        let service = try await buildApplication(configuration, logger: logger)
        try await service.runService()
    }
}

// MARK: - generate

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate one video from an image and an audio file, with a progress bar; no HTTP.",
        discussion: SettingsOptions.discussion)

    @Option(help: "The portrait (JPEG, PNG or WebP).") var image: String
    @Option(help: "The speech (WAV, MP3, M4A, OGG or FLAC).") var audio: String
    @Option(help: "A second speaker's speech (needs the infinitetalk engine with InfiniteTalk/multi/).") var audio2:
        String?
    @Option(
        name: .customLong("speaker-boxes"),
        help:
            "With --audio2: JSON [[x_min, y_min, x_max, y_max], [...]] in image pixels (default: left and right halves)."
    )
    var speakerBoxes: String?
    @Option(help: "Where to write the MP4.") var output: String = "infinitetalk.mp4"
    @Option(
        name: .customLong("live-dir"),
        help:
            "Also write the live stream there as each clip finishes (DIR/live.m3u8, HLS), so a player can follow along: ffplay DIR/live.m3u8."
    )
    var liveDir: String?
    @Option(help: "Text prompt.") var prompt: String?
    @Option(name: .customLong("negative-prompt"), help: "Negative prompt.") var negativePrompt: String?
    @Option(help: "Random seed (0...2147483647; default random).") var seed: String?
    @Option(help: "A resolution the engine declares, e.g. 480p (default: the engine's).") var resolution: String?
    @Option(help: "Denoising steps (default: the engine's, 4 with the LoRA).") var steps: String?
    @OptionGroup var options: SettingsOptions

    func run() async throws {
        let configuration = try options.resolve()
        let logger = makeLogger(level: configuration.logLevel == "info" ? "warning" : configuration.logLevel)

        // The same checks as an upload.
        let validator = UploadValidator(limits: configuration.uploadLimits, ffmpegPath: configuration.ffmpegPath)
        let audioInfo: AudioInfo
        do {
            _ = try validator.validateImage(at: image, field: "image")
            audioInfo = try await validator.validateAudio(at: audio, field: "audio")
            if let audio2 { _ = try await validator.validateAudio(at: audio2, field: "audio2") }
            guard speakerBoxes == nil || audio2 != nil else {
                throw ValidationError("--speaker-boxes needs --audio2")
            }
        } catch let error as UploadError {
            throw ValidationError("\(error.code): \(error.message)")
        }
        var fields: [String: String] = [:]
        fields["prompt"] = prompt
        fields["negative_prompt"] = negativePrompt
        fields["seed"] = seed
        fields["resolution"] = resolution
        fields["steps"] = steps
        fields["speaker_boxes"] = speakerBoxes
        let uploads: Set<String> = audio2 == nil ? [] : ["audio2"]

        let bar = ProgressBar()
        FileHandle.standardError.write(
            Data(
                "audio: \(String(format: "%.2f", audioInfo.durationSeconds)) s, starting the \(configuration.engine.name) engine...\n"
                    .utf8))
        if let liveDir {
            FileHandle.standardError.write(Data("live stream: \(liveDir)/live.m3u8 (from the first clip on)\n".utf8))
        }
        let started = ContinuousClock.now
        do {
            let done = try await OneShotGeneration(engine: configuration.engineWithLimits, logger: logger).run(
                imagePath: image, audioPath: audio, audio2Path: audio2, outputPath: output,
                segmentsDirectory: liveDir,
                parameters: { [fields, uploads, configuration] hello in
                    // The same checks as an upload, against the schema the engine declared.
                    let schema = ParameterSchema(hello: hello, configuration: configuration)
                    if uploads.contains("audio2"), !schema.takesSecondSpeaker {
                        throw ValidationError("two_speakers_unsupported: the \(hello.engine) engine takes one speaker")
                    }
                    let parameters = try schema.parse(fields: fields, uploads: uploads)
                    FileHandle.standardError.write(Data("seed \(parameters.seed.map(String.init) ?? "none")\n".utf8))
                    return parameters
                },
                onProgress: { progress, text in bar.show(progress, text) })
            bar.finish()
            let seconds = (ContinuousClock.now - started).components.seconds
            print(
                "\(output): \(done.frames) frames, \(done.width)x\(done.height) at \(done.fps) fps, "
                    + "\(String(format: "%.2f", done.durationSeconds)) s (took \(seconds) s)")
        } catch let error as OneShotGeneration.Failed {
            bar.finish()
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        } catch let error as APIError {
            throw ValidationError("\(error.code): \(error.message)")
        }
    }
}

/// A one-line progress bar on stderr: `[########------------]  42%  generating: Clip 1 of 2, step 3 of 4  eta 12 s`.
/// Redrawn in place on a terminal; elsewhere (logs, CI) one line per stage and per 10 %.
final class ProgressBar: Sendable {
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private let lastLogged = Mutex<(stage: String, tenth: Int)>(("", -1))

    func show(_ progress: JobProgress, _ text: String) {
        let width = 30
        let filled = Int((progress.progress * Double(width)).rounded())
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let eta = progress.etaSeconds.map { "  eta \(Int($0.rounded())) s" } ?? ""
        let percent = Int((progress.progress * 100).rounded())
        let line = "[\(bar)] \(String(format: "%3d", percent))%  \(progress.stage): \(text)\(eta)"
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            return
        }
        let isNew = lastLogged.withLock { last in
            guard last.stage != progress.stage || last.tenth != percent / 10 else { return false }
            last = (progress.stage, percent / 10)
            return true
        }
        if isNew { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    func finish() {
        if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
