import Foundation

/// One configurable setting: its command-line flag, its environment variable and how a text value sets it.
///
/// Every setting is declared once, in `ConfigurationSetting.all`; the `Server` target turns each into a flag and
/// the README's configuration table lists each (a test checks that). Flags win over environment variables, which win over
/// the defaults of `ServiceConfiguration`.
public struct ConfigurationSetting: Sendable {
    /// The flag without dashes, e.g. `port` for `--port`.
    public let flag: String
    /// The environment variable, e.g. `INFINITETALK_PORT`.
    public let environmentVariable: String
    /// One line for `--help` and the docs.
    public let help: String
    let apply: @Sendable (inout ServiceConfiguration, String) throws -> Void

    init(_ flag: String, _ help: String, apply: @escaping @Sendable (inout ServiceConfiguration, String) throws -> Void)
    {
        self.flag = flag
        self.environmentVariable = "INFINITETALK_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
        self.help = help
        self.apply = apply
    }

    /// A setting that `parse` reads into the value at `keyPath`.
    init<Value>(
        _ flag: String, _ help: String, _ keyPath: WritableKeyPath<ServiceConfiguration, Value> & Sendable,
        _ parse: @escaping @Sendable (String) throws -> Value
    ) {
        self.init(flag, help) { $0[keyPath: keyPath] = try parse($1) }
    }
}

/// A setting's value could not be read.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

extension ServiceConfiguration {
    /// Builds a configuration from the defaults, then `environment`, then `flags` (keyed by `flag`).
    public static func resolve(environment: [String: String], flags: [String: String] = [:]) throws
        -> ServiceConfiguration
    {
        var configuration = ServiceConfiguration()
        for setting in ConfigurationSetting.all {
            if let value = environment[setting.environmentVariable], !value.isEmpty {
                try configuration.apply(setting, value, source: setting.environmentVariable)
            }
        }
        for setting in ConfigurationSetting.all {
            if let value = flags[setting.flag] {
                try configuration.apply(setting, value, source: "--" + setting.flag)
            }
        }
        try configuration.validate()
        return configuration
    }

    mutating func apply(_ setting: ConfigurationSetting, _ value: String, source: String) throws {
        do {
            try setting.apply(&self, value.trimmingCharacters(in: .whitespaces))
        } catch let error as ConfigurationError {
            throw ConfigurationError(description: "\(source)=\(value): \(error.description)")
        }
    }

    /// Rejects combinations that cannot work.
    public func validate() throws {
        func fail(_ message: String) -> ConfigurationError { ConfigurationError(description: message) }
        if !(0...65535).contains(port) { throw fail("port must be 0...65535") }
        if maxQueueSize < 1 { throw fail("max-queue-size must be at least 1") }
        if !(1...1000).contains(maxBatchSize) { throw fail("max-batch-size must be 1...1000") }
        if let concurrent = maxConcurrentJobs, concurrent < 1 { throw fail("max-concurrent must be at least 1") }
        if maxAttempts < 1 { throw fail("max-attempts must be at least 1") }
        if uploadLimits.minAudioSeconds > uploadLimits.maxAudioSeconds {
            throw fail("min-audio-seconds is above max-audio-seconds")
        }
        if connections.requestHeadTimeout <= .zero { throw fail("request-head-timeout must be above 0") }
        if connections.idleTimeout <= .zero { throw fail("idle-timeout must be above 0") }
        if connections.maxConnections < 1 { throw fail("max-connections must be at least 1") }
        if connections.maxHeaderBytes < 1024 { throw fail("max-header-bytes must be at least 1K") }
        if connections.maxHeaderCount < 1 { throw fail("max-header-count must be at least 1") }
        if auth == nil && !BrowserAccessPolicy.isLoopback(host) {
            throw fail(
                "host \(host) is not a loopback address and auth is not set: create a key (`infinitetalk keys create --name NAME`) and pass --auth on, or pass --auth off to serve without keys on purpose"
            )
        }
        if engine.heartbeatTimeout <= engine.heartbeatInterval {
            throw fail("heartbeat-timeout must be longer than heartbeat-interval")
        }
    }
}

// MARK: - The settings

extension ConfigurationSetting {
    /// Every setting, in the order `--help` and the docs show them.
    public static let all: [ConfigurationSetting] = [
        .init("host", "Address to bind (default 127.0.0.1; 0.0.0.0 for every interface).") { $0.host = $1 },
        .init("port", "TCP port (default 8000; 0 picks a free one).", \.port, parseInt),
        .init("log-level", "trace, debug, info, notice, warning, error or critical (default info).") {
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains($1) else {
                throw ConfigurationError(description: "not a log level")
            }
            $0.logLevel = $1
        },
        .init("data-dir", "Folder for the SQLite database, uploads, results and live streams (default data).") {
            $0.dataDirectory = $1
        },
        .init(
            "min-free-disk",
            "Free disk the data folder keeps; below it uploads get 507 insufficient_storage (default 1G; 0: off).",
            \.minFreeDiskBytes, parseBytes),
        .init("web-dir", "Folder served at / (default <repo>/web when found).") { $0.webDirectory = $1 },
        .init(
            "request-head-timeout", "Time a new connection has to send its request head; then 408 (default 10s).",
            \.connections.requestHeadTimeout, parseDuration),
        .init(
            "idle-timeout", "An idle keep-alive connection, or a stalled request, is closed after this (default 60s).",
            \.connections.idleTimeout, parseDuration),
        .init(
            "max-connections", "Connections open at once; more wait until one closes (default 512).",
            \.connections.maxConnections, parseInt),
        .init(
            "max-header-bytes", "Largest request head; larger is 431 headers_too_large (default 32K).",
            \.connections.maxHeaderBytes, parseBytes),
        .init(
            "max-header-count", "Most header fields in a request; more is 431 headers_too_large (default 100).",
            \.connections.maxHeaderCount, parseInt),
        .init(
            "allowed-hosts", "Extra names accepted in Host, comma-separated (default: loopback names and IPs).",
            \.allowedHosts, parseList),
        .init(
            "auth",
            "on: every /api route and /ws need an API key (`infinitetalk keys create`); off: no keys (default off on a loopback address; required on any other).",
            \.auth, parseSwitch),
        .init(
            "allowed-origins", "Extra origins allowed to use /ws and change state, comma-separated (default none).",
            \.allowedOrigins, parseList),
        .init("engine", "Engine name passed as --engine: preview or infinitetalk (default preview).") {
            $0.engine.name = $1
        },
        .init(
            "gpus",
            "One engine process per GPU: all, a count (2; also runs several preview engines) or ids (device=0,2); jobs run on all of them (default: one engine).",
            \.gpus, GPUSelection.parse),
        .init("weights", "Model weights folder passed to the engine as --weights.") { $0.engine.weights = $1 },
        .init("device", "Device passed to the engine as --device (cuda, cpu).") { $0.engine.device = $1 },
        .init("lora-dir", "The LoRA library folder of the infinitetalk engine (default <weights>/loras).") {
            $0.engine.loraDirectory = $1
        },
        .init("engine-python", "Python running `-m infinitetalk_engine` (default <repo>/.venv/bin/python).") {
            $0.engine.python = $1
        },
        .init("engine-command", "Whole engine command line, replacing the python one (split on spaces; quotes group).")
        {
            $0.engine.command = try splitCommandLine($1)
        },
        .init(
            "max-queue-size", "Most queued jobs; one more gets 429 queue_full (default 20).", \.maxQueueSize, parseInt),
        .init(
            "max-batch-size", "Most jobs (audio files) in one POST /api/batches (default 20).", \.maxBatchSize,
            parseInt),
        .init("max-concurrent", "Jobs run at once (default: the engine's max_concurrent_jobs).") {
            $0.maxConcurrentJobs = try parseInt($1)
        },
        .init(
            "key-rate",
            "Submits per minute of one API key unless the key has its own (keys create --rate): 429 rate_limited beyond; off: no limit (default 30).",
            \.keyRatePerMinute, parseRate),
        .init(
            "key-max-queued",
            "Most queued jobs of one API key unless the key has its own (keys create --max-queued): 429 key_queue_full beyond; off: none (default 10).",
            \.keyMaxQueued, parseOptionalCount),
        .init(
            "webhook-allow-private",
            "on: webhooks may call loopback, private and link-local addresses (local receivers); off refuses them (default off).",
            \.webhooks.allowPrivate, { try parseSwitch($0) ?? false }),
        .init(
            "webhook-timeout", "Limit of one webhook attempt, connecting included (default 10s).",
            \.webhooks.timeout, parseDuration),
        .init(
            "webhook-retry-delay", "Delay before a failed webhook's first retry; doubled per attempt (default 5s).",
            \.webhooks.retryDelay, parseDuration),
        .init(
            "webhook-max-retry-delay", "Longest delay between two attempts of a webhook (default 1h).",
            \.webhooks.maxRetryDelay, parseDuration),
        .init(
            "webhook-retry-for", "A webhook not delivered within this long after its event is given up (default 24h).",
            \.webhooks.retryFor, parseDuration),
        .init(
            "webhook-progress-interval", "job.progress webhooks of one job at most this often (default 2s).",
            \.webhooks.progressInterval, parseDuration),
        .init(
            "idempotency-window", "How long an Idempotency-Key of POST /api/generate is remembered (default 24h).",
            \.idempotencyWindow, parseDuration),
        .init(
            "max-attempts", "Starts per job before an interrupted job fails with `interrupted` (default 2).",
            \.maxAttempts, parseInt),
        .init(
            "shutdown-grace", "On SIGTERM, how long running jobs may finish before being re-queued (default 30s).",
            \.shutdownGracePeriod, parseDuration),
        .init(
            "max-image-bytes", "Largest image upload (default 10M = 10485760 bytes).", \.uploadLimits.maxImageBytes,
            parseBytes),
        .init(
            "max-audio-bytes", "Largest audio upload (default 50M = 52428800 bytes).", \.uploadLimits.maxAudioBytes,
            parseBytes),
        .init(
            "max-lora-bytes", "Largest LoRA upload of POST /api/loras (default 2G = 2147483648 bytes).",
            \.uploadLimits.maxLoraBytes, parseBytes),
        .init("max-image-width", "Widest image in pixels (default 4096).", \.uploadLimits.maxImageWidth, parseInt),
        .init("max-image-height", "Tallest image in pixels (default 4096).", \.uploadLimits.maxImageHeight, parseInt),
        .init("min-image-side", "Shortest image side in pixels (default 64).", \.uploadLimits.minImageSide, parseInt),
        .init(
            "min-audio-seconds", "Shortest audio in seconds (default 0.5).", \.uploadLimits.minAudioSeconds, parseDouble
        ),
        .init(
            "max-audio-seconds", "Longest audio in seconds (default 600).", \.uploadLimits.maxAudioSeconds, parseDouble),
        .init(
            "max-prompt-length", "Longest prompt / negative_prompt in characters (default 2000).", \.maxPromptLength,
            parseInt),
        .init("max-steps", "Largest `steps` a client may ask for (default 50).", \.maxSteps, parseInt),
        .init(
            "max-part-header-bytes", "Largest header section of one multipart part (default 8K = 8192 bytes).",
            \.uploadLimits.maxPartHeaderBytes, parseBytes),
        .init(
            "max-part-header-lines", "Most header lines in one multipart part (default 16).",
            \.uploadLimits.maxPartHeaderLines, parseInt),
        .init("ffmpeg", "ffmpeg used to measure audio by decoding it (default ffmpeg from PATH).") {
            $0.ffmpegPath = $1
        },
        .init("retention", "Delete results older than this; `off` keeps them (default 7d).") {
            $0.retention = try parseOptionalDuration($1)
        },
        .init(
            "retention-sweep", "How often the retention sweep runs (default 10m).", \.retentionSweepInterval,
            parseDuration),
        .init(
            "heartbeat-interval", "How often the service pings the engine (default 5s).", \.engine.heartbeatInterval,
            parseDuration),
        .init(
            "heartbeat-timeout", "No heartbeat answer this long means a hung engine: engine_timeout (default 30s).",
            \.engine.heartbeatTimeout, parseDuration),
        .init(
            "engine-startup-timeout", "Longest wait for the engine's hello + ready (default 15m).",
            \.engine.startupTimeout, parseDuration),
        .init(
            "cancel-timeout", "A cancelled job still running after this long counts as a hang (default 5s).",
            \.engine.cancelTimeout, parseDuration),
        .init(
            "restart-backoff", "First wait before restarting a dead engine, doubled per failure (default 500ms).",
            \.engine.restartBackoff, parseDuration),
        .init(
            "max-restart-backoff", "Longest wait between engine restarts (default 30s).", \.engine.maxRestartBackoff,
            parseDuration),
    ]
}

// MARK: - Value parsing

func parseSwitch(_ text: String) throws -> Bool? {
    switch text.lowercased() {
    case "on", "true", "yes", "1": return true
    case "off", "false", "no", "0": return false
    default: throw ConfigurationError(description: "expected on or off")
    }
}

/// A rate per minute: `30`, `30/min`, `0.5/s`, `600/h`; `off` is no limit.
public func parseRate(_ text: String) throws -> Double? {
    let text = text.lowercased().replacingOccurrences(of: " ", with: "")
    if ["off", "none", "unlimited"].contains(text) { return nil }
    let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
    let perUnit: [String: Double] = [
        "s": 60, "sec": 60, "second": 60, "m": 1, "min": 1, "minute": 1, "h": 1.0 / 60, "hour": 1.0 / 60,
    ]
    guard let number = Double(parts[0]), number.isFinite, number > 0,
        let factor = parts.count == 2 ? perUnit[parts[1]] : 1
    else { throw ConfigurationError(description: "not a rate (e.g. 30/min, 1/s, 600/h, off)") }
    return number * factor
}

/// A count, or `nil` for `off`.
func parseOptionalCount(_ text: String) throws -> Int? {
    if ["off", "none", "unlimited"].contains(text.lowercased()) { return nil }
    let value = try parseInt(text)
    guard value >= 1 else { throw ConfigurationError(description: "must be at least 1, or off") }
    return value
}

func parseInt(_ text: String) throws -> Int {
    guard let value = Int(text) else { throw ConfigurationError(description: "not an integer") }
    return value
}

func parseDouble(_ text: String) throws -> Double {
    guard let value = Double(text), value.isFinite else { throw ConfigurationError(description: "not a number") }
    return value
}

/// `a, b,c` → `["a", "b", "c"]`; empty items are dropped.
func parseList(_ text: String) throws -> [String] {
    text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

/// `10485760`, `512K`, `10M`, `10MB`, `10MiB`, `1G`: suffixes are powers of 1024.
func parseBytes(_ text: String) throws -> Int {
    let units: [(String, Int)] = [
        ("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20),
        ("GB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
    ]
    let upper = text.uppercased()
    for (suffix, factor) in units where upper.hasSuffix(suffix) {
        let number = upper.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
        guard let value = Int(number), value >= 0 else { break }
        return value * factor
    }
    guard let value = Int(text), value >= 0 else {
        throw ConfigurationError(description: "not a byte count (e.g. 10M)")
    }
    return value
}

/// `30` (seconds), `500ms`, `30s`, `5m`, `2h`, `7d`, `1.5s`.
func parseDuration(_ text: String) throws -> Duration {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    var number = text
    var factor = 1.0
    for (suffix, unitFactor) in units where text.hasSuffix(suffix) {
        number = String(text.dropLast(suffix.count))
        factor = unitFactor
        break
    }
    guard let value = Double(number.trimmingCharacters(in: .whitespaces)), value >= 0, value.isFinite else {
        throw ConfigurationError(description: "not a duration (e.g. 30s, 500ms, 5m, 7d)")
    }
    return .milliseconds(Int64((value * factor * 1000).rounded()))
}

/// A duration, or `nil` for `off` / `never` / `0`.
func parseOptionalDuration(_ text: String) throws -> Duration? {
    if ["off", "never", "none", "0"].contains(text.lowercased()) { return nil }
    return try parseDuration(text)
}

/// Splits a command line on spaces; single or double quotes keep spaces inside one argument.
func splitCommandLine(_ text: String) throws -> [String] {
    var arguments: [String] = []
    var current = ""
    var quote: Character?
    var inArgument = false
    for character in text {
        if let open = quote {
            if character == open { quote = nil } else { current.append(character) }
        } else if character == "\"" || character == "'" {
            quote = character
            inArgument = true
        } else if character == " " || character == "\t" {
            if inArgument { arguments.append(current) }
            current = ""
            inArgument = false
        } else {
            current.append(character)
            inArgument = true
        }
    }
    guard quote == nil else { throw ConfigurationError(description: "unbalanced quote") }
    if inArgument { arguments.append(current) }
    guard !arguments.isEmpty else { throw ConfigurationError(description: "empty command") }
    return arguments
}
