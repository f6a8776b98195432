import Hummingbird
import Synchronization

/// The JSON of the last status object answered for each job. Encoding is most of what a status request costs, and a
/// polled job rarely changes between two polls: an equal status object gets the bytes encoded last time.
final class StatusJSONCache: Sendable {
    private let entries = Mutex<[String: (status: JobStatusResponse, json: ByteBuffer)]>([:])
    /// Jobs remembered at most; past that the cache starts over (it only saves work, never changes an answer).
    private let capacity: Int

    init(capacity: Int = 1024) {
        self.capacity = capacity
    }

    func json(for status: JobStatusResponse) throws -> ByteBuffer {
        if let last = entries.withLock({ $0[status.requestId] }), last.status == status { return last.json }
        let json = try APIJSON.encode(status)
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[status.requestId] = (status, json)
        }
        return json
    }
}
