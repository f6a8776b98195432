import Foundation
import Uploads

/// Everything the service can be told at start-up: where it listens, where it keeps data, how it runs the engine,
/// and every limit. Filled from environment variables (`ServiceConfiguration+Environment.swift`), then from
/// command-line flags (the `Server` target); the defaults here are the public contract's (`docs/api.md`).
public struct ServiceConfiguration: Sendable {
    // MARK: - HTTP

    /// Address to bind (`127.0.0.1`, `0.0.0.0`).
    public var host: String = "127.0.0.1"
    /// TCP port; 0 picks a free one.
    public var port: Int = 8000
    /// Folder served at `/` (the web page); `nil` or missing serves nothing there.
    public var webDirectory: String?
    /// Timeouts, connection cap and request-head size limits.
    public var connections: ConnectionLimits = ConnectionLimits()
    /// Extra names accepted in `Host` (see `BrowserAccessPolicy`); when bound to a loopback address only loopback
    /// names and IP literals are accepted otherwise.
    public var allowedHosts: [String] = []
    /// Extra origins (`https://app.example`) allowed to open `/ws` and send state-changing requests, besides the
    /// server's own.
    public var allowedOrigins: [String] = []
    /// API keys required (`--auth on|off`); `nil` = not set: off when bound to a loopback address, and the server
    /// refuses to start on any other address until it is set (an open team server is never an accident).
    public var auth: Bool?

    /// Whether every `/api` route and `/ws` need an API key.
    public var authEnabled: Bool { auth ?? false }

    /// Log level: trace, debug, info, notice, warning, error, critical.
    public var logLevel: String = "info"

    // MARK: - Storage

    /// Folder holding the SQLite database, uploads and results.
    public var dataDirectory: String = "data"
    /// Keep the database in memory (tests only: nothing survives the process).
    public var inMemoryDatabase: Bool = false
    /// Free bytes the data folder's disk must keep: below it new uploads get 507 `insufficient_storage` and
    /// `/readyz` says not ready (running jobs still need room for their results). 0 turns the check off.
    public var minFreeDiskBytes: Int = 1 << 30

    // MARK: - Engine

    /// How to start the engine process.
    public var engine: EngineConfiguration = EngineConfiguration()
    /// One engine process per GPU (`--gpus`); by default one engine.
    public var gpus: GPUSelection = .inherited

    // MARK: - Queue

    /// Most jobs waiting in the queue; one more gets 429 `queue_full`.
    public var maxQueueSize: Int = 20
    /// Most jobs in one `POST /api/batches`.
    public var maxBatchSize: Int = 20
    /// Jobs run at once; `nil` takes the engine's `hello.capabilities.max_concurrent_jobs`.
    public var maxConcurrentJobs: Int?
    /// Submits per minute of one API key (a token bucket holding a minute's worth), unless the key has its own
    /// rate; `nil`: no limit. Callers without a key (auth off) are not limited.
    public var keyRatePerMinute: Double? = 30
    /// Most queued jobs of one API key, unless the key has its own cap; `nil`: only `maxQueueSize`.
    public var keyMaxQueued: Int? = 10
    /// How webhooks are delivered.
    public var webhooks = WebhookSettings()
    /// How long an `Idempotency-Key` of `POST /api/generate` is remembered.
    public var idempotencyWindow: Duration = .seconds(24 * 3600)
    /// How many times a job may be started; a job interrupted (crash of the service, retryable engine error) more
    /// often than this fails with `interrupted`.
    public var maxAttempts: Int = 2
    /// How long a graceful shutdown (SIGTERM) waits for running jobs before re-queueing them.
    public var shutdownGracePeriod: Duration = .seconds(30)

    // MARK: - Limits

    /// Upload byte, pixel and duration caps.
    public var uploadLimits: UploadLimits = UploadLimits()
    /// Longest accepted `prompt` / `negative_prompt`, in characters.
    public var maxPromptLength: Int = 2000
    /// Largest accepted `steps`.
    public var maxSteps: Int = 50
    /// `ffmpeg` used to measure audio durations by decoding.
    public var ffmpegPath: String = "ffmpeg"

    // MARK: - Retention

    /// Results (and leftover uploads) older than this are deleted; their downloads answer 410 `result_expired`.
    /// `nil` keeps everything.
    public var retention: Duration? = .seconds(7 * 24 * 3600)
    /// How often the retention sweep runs.
    public var retentionSweepInterval: Duration = .seconds(600)

    /// Creates the default configuration.
    public init() {}

    /// `engine`, told the audio limit too: the engine enforces it again on what it decodes, with a second of slack
    /// because its decoder (PyAV's FFmpeg) may count a few samples differently from the service's `ffmpeg`.
    public var engineWithLimits: EngineConfiguration {
        var engine = engine
        engine.maxAudioSeconds = uploadLimits.maxAudioSeconds + 1
        return engine
    }

    /// The folder for uploaded files, one sub-folder per job.
    public var uploadsDirectory: String { (dataDirectory as NSString).appendingPathComponent("uploads") }
    /// The folder for finished videos.
    public var resultsDirectory: String { (dataDirectory as NSString).appendingPathComponent("results") }
    /// The folder for the live streams of jobs (HLS segments), one sub-folder per job.
    public var liveDirectory: String { (dataDirectory as NSString).appendingPathComponent("live") }
    /// The SQLite database file.
    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("infinitetalk.sqlite") }
}

/// How the engine process is started and watched.
public struct EngineConfiguration: Sendable {
    /// Engine name passed as `--engine` (`preview`, `infinitetalk`).
    public var name: String = "preview"
    /// Model weights folder passed as `--weights`, if any.
    public var weights: String?
    /// Device passed as `--device` (`cuda`, `cpu`), if any.
    public var device: String?
    /// Python interpreter running `-m infinitetalk_engine`; `nil` finds `<repo>/.venv/bin/python`.
    public var python: String?
    /// The whole command line, replacing the python one (tests, custom engines).
    public var command: [String]?
    /// The LoRA library folder, passed as `--engine-option lora_dir=…` (default: the engine's, `<weights>/loras`).
    public var loraDirectory: String?
    /// The engine's `CUDA_VISIBLE_DEVICES` (one engine per GPU, `--gpus`); `nil`: as the service has it.
    public var visibleDevices: String?
    /// Passed as `--max-audio-seconds`: the engine refuses longer audio with `bad_audio` before any model work.
    public var maxAudioSeconds: Double?
    /// Folder `python -m infinitetalk_engine` runs in (the repository root when found).
    public var workingDirectory: String?
    /// How often the service sends `heartbeat`.
    public var heartbeatInterval: Duration = .seconds(5)
    /// No heartbeat answer for this long: the engine is hung; its jobs fail with `engine_timeout`.
    public var heartbeatTimeout: Duration = .seconds(30)
    /// Longest wait of a submission (and of `GET /api/config`) for the engine's first `hello`; without one the
    /// service cannot validate options and answers 503 `engine_unavailable`.
    public var helloTimeout: Duration = .seconds(30)
    /// Longest wait for `hello` + `ready` after start (model loading).
    public var startupTimeout: Duration = .seconds(900)
    /// A cancelled job the engine has not ended after this long counts as a hang.
    public var cancelTimeout: Duration = .seconds(5)
    /// First wait before restarting a dead engine; doubles up to `maxRestartBackoff`.
    public var restartBackoff: Duration = .milliseconds(500)
    /// Longest wait between restarts.
    public var maxRestartBackoff: Duration = .seconds(30)

    /// Creates the default engine configuration.
    public init() {}
}
