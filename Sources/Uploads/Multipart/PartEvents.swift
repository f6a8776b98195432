import MultipartKit
import NIOCore

/// What the callback-based `MultipartParser` reported while it parsed one chunk, in order.
enum PartEvent {
    /// A part's headers are complete and its body begins.
    case begin(headers: [(name: String, value: String)])
    /// Body bytes of the current part (all pieces from one chunk, merged).
    case body(ByteBuffer)
    /// The current part ended at a boundary.
    case end
}

/// Collects `MultipartParser` callbacks into `PartEvent`s, so that the async file writes can happen after each
/// chunk is parsed (the callbacks themselves are synchronous).
///
/// `onBody` hands over tiny pieces (it splits at every CR byte); they are appended to one `ByteBuffer` that is
/// held outside the event array, because mutating a buffer stored inside an array element copies it every time.
final class PartEvents {
    private var events: [PartEvent] = []
    private var headers: [(name: String, value: String)] = []
    private var body = ByteBuffer()
    private(set) var isInsidePart = false
    private(set) var completedParts = 0
    /// Whether a header line arrived since the last part ended (the body ended inside a part's headers).
    var hasPendingHeaders: Bool { !headers.isEmpty }

    /// Routes `parser`'s callbacks here.
    func attach(to parser: MultipartParser) {
        parser.onHeader = { [unowned self] name, value in headers.append((name, value)) }
        parser.onBody = { [unowned self] piece in
            beginIfNeeded()
            body.writeBuffer(&piece)
        }
        parser.onPartComplete = { [unowned self] in
            beginIfNeeded()
            flushBody()
            events.append(.end)
            isInsidePart = false
            completedParts += 1
        }
    }

    /// The events since the last call, oldest first.
    func drain() -> [PartEvent] {
        flushBody()
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    private func beginIfNeeded() {
        guard !isInsidePart else { return }
        events.append(.begin(headers: headers))
        headers.removeAll()
        isInsidePart = true
    }

    private func flushBody() {
        guard body.readableBytes > 0 else { return }
        events.append(.body(body))
        body = ByteBuffer()
    }
}
