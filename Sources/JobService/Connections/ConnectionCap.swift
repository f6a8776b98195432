import HummingbirdCore
import Logging

/// Caps the connections open at once (`--max-connections`). Hummingbird asks it before accepting: at the cap the
/// server stops accepting, so new clients wait in the listen backlog until a connection closes, and the process
/// never runs out of file descriptors. It logs one warning when the cap is reached, and one notice once the
/// connections fall below half of it, not one line per connection.
struct ConnectionCap: AvailableConnectionsDelegate {
    let maxConnections: Int
    let logger: Logger
    private var open = 0
    private var atCap = false

    init(maxConnections: Int, logger: Logger) {
        self.maxConnections = maxConnections
        self.logger = logger
    }

    mutating func connectionOpened() {
        open += 1
        if open >= maxConnections, !atCap {
            atCap = true
            logger.warning(
                "connection limit reached: \(open) connections open (--max-connections \(maxConnections)); new ones wait until one closes"
            )
        }
    }

    mutating func connectionClosed() {
        open -= 1
        if atCap, open < maxConnections / 2 {
            atCap = false
            logger.notice("connections back below the limit: \(open) open")
        }
    }

    func isAcceptingNewConnections() -> Bool {
        open < maxConnections
    }
}
