import Prometheus

/// The service's Prometheus metrics, in their own registry (no global bootstrap, so tests can build many apps).
public final class ServiceMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let queueDepth: Gauge
    let jobsProcessing: Gauge
    let engineRestarts: Counter
    let jobSeconds: ValueHistogram
    private let jobsByStatus: [JobStatus: Counter]
    private let uploadBytesByKind: [String: Counter]
    private let webhooksByOutcome: [WebhookOutcome: Counter]

    /// How a webhook attempt ended.
    enum WebhookOutcome: String, CaseIterable {
        case delivered
        /// An error, a timeout or a non-2xx answer: tried again later.
        case failedAttempt = "failed_attempt"
        /// Failed past the retry window: given up.
        case gaveUp = "gave_up"
        /// The URL resolves to an address webhooks may not reach (SSRF guard).
        case refused
    }

    public init() {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "infinitetalk", metricName: metric, unitName: unit, helpText: help)
        }
        queueDepth = registry.makeGauge(descriptor: name("queue", "depth", "Jobs waiting in the queue."))
        jobsProcessing = registry.makeGauge(descriptor: name("jobs", "processing", "Jobs running now."))
        engineRestarts = registry.makeCounter(
            descriptor: name("engine_restarts", "total", "Times a dead or hung engine was started again."))
        jobSeconds = registry.makeValueHistogram(
            descriptor: name("job", "seconds", "Compute time of finished jobs, from start to end."),
            buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600])
        var jobs: [JobStatus: Counter] = [:]
        for status in JobStatus.allCases {
            jobs[status] = registry.makeCounter(
                descriptor: name("jobs", "total", "Jobs that reached a status (queued counts submissions)."),
                labels: [("status", status.rawValue)])
        }
        jobsByStatus = jobs
        var uploads: [String: Counter] = [:]
        for kind in ["image", "audio"] {
            uploads[kind] = registry.makeCounter(
                descriptor: name("upload_bytes", "total", "Bytes of accepted uploads."), labels: [("kind", kind)])
        }
        uploadBytesByKind = uploads
        var webhooks: [WebhookOutcome: Counter] = [:]
        for outcome in WebhookOutcome.allCases {
            webhooks[outcome] = registry.makeCounter(
                descriptor: name("webhook_attempts", "total", "Webhook delivery attempts, by outcome."),
                labels: [("outcome", outcome.rawValue)])
        }
        webhooksByOutcome = webhooks
    }

    /// Per engine process: `infinitetalk_engine_up{engine,gpu}` (1 when ready) and its restarts.
    func showEngines(_ statuses: [EngineInstanceStatus]) {
        for status in statuses {
            let labels = [("engine", String(status.index)), ("gpu", status.gpu ?? "")]
            registry.makeGauge(
                name: "infinitetalk_engine_up", labels: labels, help: "1 while the engine process is ready for jobs."
            ).set(status.state.hello != nil ? 1.0 : 0.0)
            registry.makeGauge(
                name: "infinitetalk_engine_instance_restarts", labels: labels,
                help: "Times this engine process was started again."
            ).set(Double(status.restarts))
        }
    }

    func countWebhook(_ outcome: WebhookOutcome) {
        webhooksByOutcome[outcome]?.increment()
    }

    /// Counts a job reaching `status`.
    func countJob(_ status: JobStatus) {
        jobsByStatus[status]?.increment()
    }

    func countUpload(kind: String, bytes: Int) {
        uploadBytesByKind[kind]?.increment(by: Int64(bytes))
    }

    /// The text exposition.
    public func render() -> String {
        registry.emitToString()
    }
}
