/// What one client connection may cost the server: how long it may take to send a request head or sit idle, how
/// many connections are open at once, and how large a request head may be.
public struct ConnectionLimits: Sendable {
    /// From a connection's start until its first request head is complete; then 408 `request_timeout` and close.
    public var requestHeadTimeout: Duration = .seconds(10)
    /// A keep-alive connection with no request in progress (or a request whose head or body stops arriving) is
    /// closed after this long.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections open at once; above it the server stops accepting (new clients wait in the listen backlog
    /// until one closes). Keep it well below the process's file-descriptor limit (`ulimit -n`).
    public var maxConnections: Int = 512
    /// Largest request head (request line and header fields, and any single field); larger is 431
    /// `headers_too_large`.
    public var maxHeaderBytes: Int = 32 * 1024
    /// Most header fields in a request head; more is 431 `headers_too_large`.
    public var maxHeaderCount: Int = 100

    /// Creates the default limits.
    public init() {}
}
