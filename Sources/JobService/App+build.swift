import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import ServiceLifecycle

/// Everything `buildApplication` assembled: the HTTP application (with the job worker and retention as its
/// services) and the parts tests and the server need to reach.
public struct InfiniteTalkService: Sendable {
    public let application: Application<RouterResponder<AppRequestContext>>
    public let worker: JobWorker
    public let supervisor: EngineSupervisor
    public let repository: JobRepository
    public let broadcaster: ProgressBroadcaster
    public let configuration: ServiceConfiguration
    let retention: RetentionService
    let logger: Logger

    /// Runs until SIGTERM / SIGINT. On the signal it first drains the worker while still serving HTTP (new jobs
    /// get 503 `shutting_down`), then stops the server.
    public func runService() async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [application, DrainBeforeStopping(worker: worker, broadcaster: broadcaster)],
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

/// Builds the service from its configuration: database (recovering jobs a crash interrupted), engine supervisor,
/// worker, routes.
public func buildApplication(_ configuration: ServiceConfiguration, logger: Logger? = nil) async throws
    -> InfiniteTalkService
{
    let logger = logger ?? Logger(label: "infinitetalk")
    let files = JobFiles(
        uploadsDirectory: configuration.uploadsDirectory, resultsDirectory: configuration.resultsDirectory)
    try files.createDirectories()

    let database =
        configuration.inMemoryDatabase
        ? try AppDatabase.inMemory()
        : try AppDatabase.open(path: configuration.databasePath)
    let repository = JobRepository(database: database)
    try await recoverAfterRestart(repository: repository, files: files, configuration: configuration, logger: logger)

    let metrics = ServiceMetrics()
    let estimator = ThroughputEstimator(prior: ThroughputEstimator.prior(forEngine: configuration.engine.name))
    for job in try await repository.recentCompletedJobs(limit: 20).reversed() { estimator.record(job) }
    let wakeUp = WakeUpSignal()
    let shutdownState = ShutdownState()
    let liveProgress = LiveProgressStore()
    let broadcaster = ProgressBroadcaster()
    let supervisor = EngineSupervisor(
        configuration: configuration.engine, logger: logger,
        onStateChange: { _ in wakeUp.signal() },
        onRestart: { metrics.engineRestarts.increment() })
    let override = configuration.maxConcurrentJobs
    let reporter = StatusReporter(
        repository: repository, liveProgress: liveProgress, estimator: estimator,
        maxQueueSize: configuration.maxQueueSize,
        capacity: { if let override { override } else { await supervisor.engineConcurrency } })
    let notifier = JobNotifier(broadcaster: broadcaster, reporter: reporter, logger: logger)
    let worker = JobWorker(
        repository: repository, supervisor: supervisor, files: files, liveProgress: liveProgress,
        notifier: notifier, estimator: estimator, metrics: metrics, shutdownState: shutdownState,
        wakeUp: wakeUp, logger: logger, maxConcurrentOverride: override,
        maxAttempts: configuration.maxAttempts, gracePeriod: configuration.shutdownGracePeriod)
    let retention = RetentionService(
        repository: repository, files: files, retention: configuration.retention,
        interval: configuration.retentionSweepInterval, logger: logger)

    let router = Router(context: AppRequestContext.self)
    router.add(middleware: JSONErrorMiddleware())
    if let webDirectory = configuration.webDirectory, FileManager.default.fileExists(atPath: webDirectory) {
        router.add(middleware: FileMiddleware(webDirectory, searchForIndexHtml: true, logger: logger))
    }
    JobController(
        repository: repository, worker: worker, reporter: reporter, notifier: notifier, files: files,
        configuration: configuration, supervisor: supervisor, metrics: metrics, shutdownState: shutdownState,
        wakeUp: wakeUp, logger: logger
    ).addRoutes(to: router)
    ResultController(repository: repository, files: files).addRoutes(to: router)
    SystemController(
        configuration: configuration, supervisor: supervisor, worker: worker, repository: repository,
        metrics: metrics, shutdownState: shutdownState
    ).addRoutes(to: router)
    ProgressSocketController(broadcaster: broadcaster, reporter: reporter, logger: logger).addRoutes(to: router)

    let application = Application(
        router: router,
        server: .http1WebSocketUpgrade(
            webSocketRouter: router,
            configuration: .init(
                http1: .init(additionalChannelHandlers: [ExpectContinueHandler()]))),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "infinitetalk"),
        services: [worker, retention],
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? configuration.port
            logger.notice(
                "serving http://\(configuration.host):\(port) (engine: \(configuration.engine.commandLine.joined(separator: " ")))"
            )
        },
        logger: logger)
    return InfiniteTalkService(
        application: application, worker: worker, supervisor: supervisor, repository: repository,
        broadcaster: broadcaster, configuration: configuration, retention: retention,
        logger: logger)
}

/// After a crash (`kill -9`), jobs still marked `processing` were interrupted: re-queue them once, fail them after
/// that; and delete partial results.
private func recoverAfterRestart(
    repository: JobRepository, files: JobFiles, configuration: ServiceConfiguration,
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
}

/// On graceful shutdown, drains the worker before the HTTP server stops (it is listed after the application, so
/// the service group signals it first), then closes WebSocket streams so the server can stop.
struct DrainBeforeStopping: Service {
    let worker: JobWorker
    let broadcaster: ProgressBroadcaster

    func run() async throws {
        try? await gracefulShutdown()
        await worker.drain()
        broadcaster.finishAll()
    }
}
