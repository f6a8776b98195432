import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// Turns job changes into webhooks and delivers them: each event is first written to the outbox
/// (`WebhookOutbox`), then POSTed, signed (`WebhookSignature`), to the job's `webhook_url`; a failed attempt (an
/// error, a timeout, an answer other than 2xx; redirects are not followed) is retried with exponential backoff and
/// jitter until `retryFor` has passed. Delivery is at least once: the same `webhook-id` on every attempt.
///
/// On start it adds the events a crash kept out of the outbox (a job changed, the process died before the row was
/// written) and sends what is still pending.
public final class WebhookDispatcher: Service, Sendable {
    let outbox: WebhookOutbox
    let queue: JobQueue
    let keys: any KeyRepository
    let serverSecret: String
    let settings: WebhookSettings
    let policy: WebhookAddressPolicy
    let clock: any ServiceClock
    let logger: Logger
    /// Subscribed at creation, so no change made after `buildApplication` returns is missed.
    private let updates: AsyncStream<Job>
    private let wakeUps = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    /// - Parameter clock: paces the retry polls and the progress throttle. The service passes the system clock, not
    ///   its own: retries are due at stored wall-clock dates, and a test's manual clock would stall them.
    init(
        outbox: WebhookOutbox, queue: JobQueue, keys: any KeyRepository, serverSecret: String,
        settings: WebhookSettings, clock: any ServiceClock = SystemClock(), logger: Logger
    ) {
        self.outbox = outbox
        self.queue = queue
        self.keys = keys
        self.serverSecret = serverSecret
        self.settings = settings
        policy = WebhookAddressPolicy(allowPrivate: settings.allowPrivate)
        self.clock = clock
        self.logger = logger
        updates = queue.updates()
    }

    public func run() async throws {
        let client = HTTPClient(
            configuration: .init(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .init(settings.timeout), read: .init(settings.timeout))))
        await recoverMissedEvents()
        try? await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.watchJobs() }
                group.addTask { await self.tick() }
                group.addTask { await self.deliverWhenWoken(client) }
                await group.waitForAll()
            }
        }
        try? await client.shutdown()
    }

    // MARK: - Events

    private func watchJobs() async {
        var lastStatus: [String: JobStatus] = [:]
        var lastProgress: [String: Duration] = [:]
        for await job in updates {
            guard job.webhookURL != nil else { continue }
            let previous = lastStatus[job.id]
            lastStatus[job.id] = job.status
            if job.status.isTerminal {
                lastStatus[job.id] = nil
                lastProgress[job.id] = nil
            }
            var event: WebhookEvent?
            if previous != job.status {
                event = WebhookEvent(movingTo: job.status)
            } else if job.status == .processing && job.webhookProgress {
                let now = clock.now
                if let last = lastProgress[job.id], now - last < settings.progressInterval { continue }
                lastProgress[job.id] = now
                event = .progress
            }
            guard let event else { continue }
            await record(event, of: job)
        }
    }

    /// Writes the event to the outbox and wakes the sender.
    private func record(_ event: WebhookEvent, of job: Job) async {
        guard let url = job.webhookURL else { return }
        do {
            let now = Date()
            let payload = WebhookPayload(type: event, timestamp: now, data: try await queue.status(of: job))
            let delivery = WebhookDelivery(
                jobID: job.id, owner: job.owner, url: url, event: event, body: try APIJSON.encodeString(payload),
                now: now)
            if try await outbox.add(delivery) { wakeUps.continuation.yield() }
        } catch {
            logger.error("could not record the \(event.rawValue) webhook of job \(job.id): \(error)")
        }
    }

    private func recoverMissedEvents() async {
        do {
            let since = Date().addingTimeInterval(-TimeInterval(settings.retryFor.components.seconds))
            for job in try await outbox.jobsMissingEvents(since: since) {
                guard let event = WebhookEvent(movingTo: job.status) else { continue }
                logger.notice("job \(job.id): recording the \(event.rawValue) webhook a restart interrupted")
                await record(event, of: job)
            }
        } catch {
            logger.error("could not look for webhooks a restart interrupted: \(error)")
        }
        wakeUps.continuation.yield()
    }

    // MARK: - Delivery

    /// Wakes the sender regularly, for retries that came due.
    private func tick() async {
        let interval = min(.seconds(1), settings.retryDelay)
        while !Task.isCancelled {
            try? await clock.sleep(for: interval)
            wakeUps.continuation.yield()
        }
    }

    private func deliverWhenWoken(_ client: HTTPClient) async {
        for await _ in wakeUps.stream {
            while !Task.isCancelled {
                let due = (try? await outbox.due(at: Date(), limit: 16)) ?? []
                if due.isEmpty { break }
                await withTaskGroup(of: Void.self) { group in
                    for delivery in due { group.addTask { await self.attempt(delivery, client: client) } }
                }
            }
        }
    }

    private func attempt(_ delivery: WebhookDelivery, client: HTTPClient) async {
        var delivery = delivery
        let now = Date()
        delivery.attempts += 1
        delivery.lastAttemptAt = now
        if let url = URL(string: delivery.url), let refusal = policy.refusalBeforeSending(url) {
            delivery.state = .failed
            delivery.lastError = refusal
            queue.metrics.countWebhook(.refused)
            logger.warning("webhook \(delivery.id) of job \(delivery.jobId) not sent: \(refusal)")
        } else {
            do {
                let status = try await post(delivery, at: now, client: client)
                delivery.lastStatusCode = status
                delivery.lastError = (200..<300).contains(status) ? nil : "the receiver answered HTTP \(status)"
            } catch {
                delivery.lastStatusCode = nil
                delivery.lastError = "\(error)"
            }
            if delivery.lastError == nil {
                delivery.state = .delivered
                queue.metrics.countWebhook(.delivered)
            } else {
                queue.metrics.countWebhook(.failedAttempt)
                scheduleRetry(&delivery, now: now)
            }
        }
        do {
            try await outbox.update(delivery)
        } catch {
            logger.error("could not record the attempt of webhook \(delivery.id): \(error)")
        }
    }

    private func post(_ delivery: WebhookDelivery, at now: Date, client: HTTPClient) async throws -> Int {
        let timestamp = Int(now.timeIntervalSince1970)
        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: "infinitetalk-webhooks")
        request.headers.add(name: "webhook-id", value: delivery.id)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(
            name: "webhook-signature",
            value: try WebhookSignature.sign(
                id: delivery.id, timestamp: timestamp, body: delivery.body,
                secret: try await secret(of: delivery.owner)))
        request.body = .bytes(ByteBuffer(string: delivery.body))
        let response = try await client.execute(request, timeout: .init(settings.timeout))
        _ = try? await response.body.collect(upTo: 64 << 10)
        return Int(response.status.code)
    }

    /// The owner key's secret; the server's for jobs submitted without a key.
    private func secret(of owner: String?) async throws -> String {
        guard let owner else { return serverSecret }
        return try await keys.key(id: owner)?.webhookSecret ?? serverSecret
    }

    private func scheduleRetry(_ delivery: inout WebhookDelivery, now: Date) {
        let base = Self.seconds(settings.retryDelay) * pow(2, Double(delivery.attempts - 1))
        let delay = min(base, Self.seconds(settings.maxRetryDelay)) * Double.random(in: 0.75...1.25)
        let next = now.addingTimeInterval(delay)
        if next > delivery.createdAt.addingTimeInterval(Self.seconds(settings.retryFor)) {
            delivery.state = .failed
            queue.metrics.countWebhook(.gaveUp)
            logger.warning(
                "webhook \(delivery.id) of job \(delivery.jobId) given up after \(delivery.attempts) attempts: \(delivery.lastError ?? "")"
            )
        } else {
            delivery.nextAttemptAt = next
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
