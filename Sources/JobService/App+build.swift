import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

/// Everything `buildApplication` assembled: the HTTP application (with the job worker and retention as its
/// services) and the queue behind it, for tests and the server.
public struct InfiniteTalkService: Sendable {
    public let application: Application<RouterResponder<AppRequestContext>>
    public let queue: JobQueue
    public let configuration: ServiceConfiguration
    let retention: RetentionService
    let logger: Logger
    public let keys: any KeyRepository

    public var repository: any JobRepository { queue.repository }
    public var worker: JobWorker { queue.worker }
    public var engine: any Engine { queue.engine }

    /// Runs until SIGTERM / SIGINT. On the signal it first drains the worker while still serving HTTP (new jobs
    /// get 503 `shutting_down`), then stops the server.
    public func runService() async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [application, DrainBeforeStopping(queue: queue)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    /// Runs one retention sweep now (tests).
    @discardableResult
    public func sweepExpiredResults(now: Date = Date()) async -> Int {
        await retention.sweep(now: now)
    }
}

/// Builds the service from its configuration: the job store (recovering jobs a crash interrupted), the engine, the
/// queue, the routes.
/// - Parameters:
///   - repository: where jobs are kept; by default SQLite at `configuration.databasePath` (in memory with
///     `inMemoryDatabase`).
///   - keys: where API keys are kept; by default the same SQLite database.
///   - engine: by default the engine process `configuration.engine` describes, supervised.
///   - clock: times the worker's ticks and grace period, the progress rate limit and retention sweeps.
///   - diskSpace: tells the data folder's free space (the low-disk watermark, `--min-free-disk`).
public func buildApplication(
    _ configuration: ServiceConfiguration, repository: (any JobRepository)? = nil, keys: (any KeyRepository)? = nil,
    engine: (any Engine)? = nil,
    clock: any ServiceClock = SystemClock(), diskSpace: DiskSpace = .system, logger: Logger? = nil
) async throws -> InfiniteTalkService {
    let logger = logger ?? Logger(label: "infinitetalk")
    let files = JobFiles(
        uploadsDirectory: configuration.uploadsDirectory, resultsDirectory: configuration.resultsDirectory,
        liveDirectory: configuration.liveDirectory)
    try files.createDirectories()

    let database =
        configuration.inMemoryDatabase
        ? try SQLiteDatabase.inMemory() : try SQLiteDatabase.open(path: configuration.databasePath)
    let repository = repository ?? database.jobs
    let keys = keys ?? database.keys
    try await recoverAfterRestart(repository: repository, files: files, configuration: configuration, logger: logger)
    let queue = try await JobQueue(
        repository: repository,
        engine: engine ?? makeEngine(configuration, logger: logger),
        files: files, configuration: configuration, clock: clock, diskSpace: diskSpace, logger: logger)
    let retention = RetentionService(
        repository: repository, files: files, retention: configuration.retention,
        interval: configuration.retentionSweepInterval, clock: clock, logger: logger)

    let webhooks = WebhookDispatcher(
        outbox: database.webhooks, queue: queue, keys: keys,
        serverSecret: try ServerWebhookSecret.load(dataDirectory: configuration.dataDirectory),
        settings: configuration.webhooks, logger: logger)

    let access = BrowserAccessPolicy(configuration: configuration)
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: JSONErrorMiddleware(logger: logger))
    router.add(middleware: BrowserAccessMiddleware(policy: access))
    router.add(middleware: PathCharactersMiddleware())
    router.add(middleware: AuthMiddleware(keys: keys, enabled: configuration.authEnabled))
    if let webDirectory = configuration.webDirectory, FileManager.default.fileExists(atPath: webDirectory) {
        let page = WebPageFiles(folder: webDirectory, logger: logger)
        router.add(middleware: FileMiddleware(fileProvider: page, searchForIndexHtml: true))
    }
    let jobs = JobController<AppRequestContext>(
        queue: queue, files: files, configuration: configuration,
        limits: KeyLimits(configuration: configuration, clock: clock),
        idempotent: IdempotentSubmits(store: database.idempotency, window: configuration.idempotencyWindow),
        webhookPolicy: WebhookAddressPolicy(allowPrivate: configuration.webhooks.allowPrivate),
        webhooks: database.webhooks, logger: logger)
    jobs.addRoutes(to: router)
    BatchController(jobs: jobs).addRoutes(to: router)
    LoraController(jobs: jobs).addRoutes(to: router)
    ResultController(queue: queue, files: files).addRoutes(to: router)
    LiveStreamController(queue: queue, files: files).addRoutes(to: router)
    SystemController(queue: queue, configuration: configuration).addRoutes(to: router)
    ProgressSocketController(queue: queue).addRoutes(to: router)

    let application = Application(
        router: router,
        server: httpServer(
            webSocketRouter: router, limits: configuration.connections, access: access,
            keys: configuration.authEnabled ? keys : nil),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "infinitetalk",
            availableConnectionsDelegate: ConnectionCap(
                maxConnections: configuration.connections.maxConnections, logger: logger)),
        services: [queue.worker, retention, webhooks],
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? configuration.port
            logger.notice(
                "serving http://\(configuration.host):\(port) (engine: \(configuration.engineWithLimits.commandLine.joined(separator: " ")))"
            )
        },
        logger: logger)
    return InfiniteTalkService(
        application: application, queue: queue, configuration: configuration, retention: retention, logger: logger,
        keys: keys)
}

/// HTTP/1 with WebSocket upgrades (`/ws` is routed by `webSocketRouter`), within `limits`: Hummingbird's idle
/// timeout and header limits, and this service's guards on every connection (`GuardedHTTPChannel`).
private func httpServer(
    webSocketRouter: Router<AppRequestContext>, limits: ConnectionLimits, access: BrowserAccessPolicy,
    keys: (any KeyRepository)?
) -> HTTPServerBuilder {
    let webSocketResponder = webSocketRouter.buildResponder()
    let http1 = HTTP1Channel.Configuration(
        additionalChannelHandlers: [ExpectContinueHandler()], idleTimeout: TimeAmount(limits.idleTimeout),
        httpDecoderConfiguration: .init(
            maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes,
            maxHeaderFieldCount: limits.maxHeaderCount))
    return HTTPServerBuilder { responder in
        GuardedHTTPChannel(
            base: HTTP1WebSocketUpgradeChannel(
                responder: responder, webSocketResponder: webSocketResponder, configuration: .init(http1: http1)),
            limits: limits, access: access, keys: keys)
    }
}

/// The engine process the configuration describes, supervised; one per GPU in a pool with `--gpus`.
private func makeEngine(_ configuration: ServiceConfiguration, logger: Logger) -> any Engine {
    let devices = configuration.gpus.visibleDevices()
    func supervisor(_ device: String?) -> EngineSupervisor {
        var engine = configuration.engineWithLimits
        engine.visibleDevices = device
        var logger = logger
        if let device { logger[metadataKey: "gpu"] = "\(device)" }
        return EngineSupervisor(configuration: engine, logger: logger)
    }
    guard devices.count > 1 else { return supervisor(devices.first ?? nil) }
    logger.notice("running \(devices.count) engines, one per GPU: \(devices.compactMap { $0 }.joined(separator: ", "))")
    return EnginePool(members: devices.map { device in (label: device ?? "0", engine: supervisor(device)) })
}

/// After a crash (`kill -9`), jobs still marked `processing` were interrupted: re-queue them once, fail them after
/// that; delete partial results, uploads nothing will use, and live streams of no job.
private func recoverAfterRestart(
    repository: any JobRepository, files: JobFiles, configuration: ServiceConfiguration,
    logger: Logger
) async throws {
    let recovered = try await repository.recoverInterruptedJobs(maxAttempts: configuration.maxAttempts)
    for job in recovered.requeued {
        logger.notice("job \(job.id) was interrupted; re-queued (attempt \(job.attempts))")
    }
    for job in recovered.failed {
        logger.notice("job \(job.id) was interrupted \(job.attempts) times; failed")
        files.removeUploads(of: job.id)
    }
    for job in recovered.requeued + recovered.failed { files.removeResult(of: job.id) }
    try await removeOrphanUploads(repository: repository, files: files, logger: logger)
    try await removeOrphanLiveStreams(repository: repository, files: files, logger: logger)
}

/// Upload folders of no job, or of a job that is no longer queued or running, are left by a crash mid-upload or a
/// lost race; nothing will read them again, and retention (which may be off) is not their keeper.
private func removeOrphanUploads(repository: any JobRepository, files: JobFiles, logger: Logger) async throws {
    let removed = try await removeFolders(
        of: files.uploadFolderIDs(), keepingThoseOf: { !$0.status.isTerminal }, repository: repository,
        remove: files.removeUploads)
    if removed > 0 { logger.notice("removed \(removed) upload folder(s) of no running or queued job") }
}

/// Live folders of a job the database does not know (a deleted or replaced database), or of one whose files
/// retention already deleted (a crash in the middle of a sweep).
private func removeOrphanLiveStreams(repository: any JobRepository, files: JobFiles, logger: Logger) async throws {
    let removed = try await removeFolders(
        of: files.liveFolderIDs(), keepingThoseOf: { $0.expiredAt == nil }, repository: repository,
        remove: files.removeLive)
    if removed > 0 { logger.notice("removed \(removed) live folder(s) of no job") }
}

/// Removes each per-job folder of `ids` whose job the database does not know, or does not pass `keep`.
/// - Returns: how many were removed.
private func removeFolders(
    of ids: [String], keepingThoseOf keep: (Job) -> Bool, repository: any JobRepository,
    remove: (String) -> Void
) async throws -> Int {
    var removed = 0
    for id in ids {
        if let job = try await repository.job(id: id), keep(job) { continue }
        remove(id)
        removed += 1
    }
    return removed
}

/// On graceful shutdown, drains the queue before the HTTP server stops (it is listed after the application, so
/// the service group signals it first), then closes WebSocket streams so the server can stop.
struct DrainBeforeStopping: Service {
    let queue: JobQueue

    func run() async throws {
        try? await gracefulShutdown()
        await queue.drain()
    }
}
