import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The request context of every route: WebSocket-capable, and it keeps the connection's channel, so `/ws` can have
/// broadcasts written straight into it (see `ProgressBroadcaster`).
public struct AppRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    public let channel: any Channel
    /// Who sent the request; set by the auth middleware (`.anonymous` when auth is off).
    public var caller: Caller = .anonymous

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        channel = source.channel
    }
}
