/// How webhooks are delivered (`--webhook-…` settings).
public struct WebhookSettings: Sendable {
    /// Call loopback, private and link-local addresses too (local receivers, tests); off by default (SSRF).
    public var allowPrivate = false
    /// One attempt's limit, connecting included.
    public var timeout: Duration = .seconds(10)
    /// The first retry's delay; each next one doubles (up to `maxRetryDelay`), with ±25 % jitter.
    public var retryDelay: Duration = .seconds(5)
    public var maxRetryDelay: Duration = .seconds(3600)
    /// A delivery not made within this long after its event is given up (`failed`).
    public var retryFor: Duration = .seconds(24 * 3600)
    /// `job.progress` webhooks of one job at most this often.
    public var progressInterval: Duration = .seconds(2)

    public init() {}
}
