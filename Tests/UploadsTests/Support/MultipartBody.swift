import NIOCore
import Synchronization

/// Builds `multipart/form-data` bodies by hand, so tests control every byte (including malformed ones).
struct MultipartBody {
    static let boundary = "spec-boundary-7MA4YWxkTrZu0gW"
    var bytes: [UInt8] = []

    /// A file part.
    mutating func addFile(
        _ name: String, filename: String = "upload.bin",
        contentType: String = "application/octet-stream", extraHeaders: [String] = [], bytes fileBytes: [UInt8]
    ) {
        append("--\(Self.boundary)\r\n")
        append("Content-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\n")
        for header in extraHeaders { append(header + "\r\n") }
        append("Content-Type: \(contentType)\r\n\r\n")
        bytes += fileBytes
        append("\r\n")
    }

    /// A text part.
    mutating func addField(_ name: String, _ value: String) {
        addRawField(name, Array(value.utf8))
    }

    /// A text part with arbitrary bytes.
    mutating func addRawField(_ name: String, _ value: [UInt8]) {
        append("--\(Self.boundary)\r\n")
        append("Content-Disposition: form-data; name=\"\(name)\"\r\n\r\n")
        bytes += value
        append("\r\n")
    }

    /// The body with its closing delimiter.
    func finished() -> [UInt8] {
        bytes + Array("--\(Self.boundary)--\r\n".utf8)
    }

    mutating func append(_ text: String) {
        bytes += Array(text.utf8)
    }

    /// The usual valid request: an image, an audio file and a prompt.
    static func typical(
        image: [UInt8] = Array(repeating: 1, count: 1000),
        audio: [UInt8] = Array(repeating: 2, count: 2000)
    ) -> MultipartBody {
        var body = MultipartBody()
        body.addFile("image", filename: "face.png", contentType: "image/png", bytes: image)
        body.addFile("audio", filename: "speech.wav", contentType: "audio/wav", bytes: audio)
        body.addField("prompt", "A person is talking.")
        return body
    }
}

/// A request body delivered in fixed-size chunks, as a server would deliver it, counting what was read.
struct ChunkedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let chunks: [ByteBuffer]
    let delivered = DeliveryCounter()

    init(_ bytes: [UInt8], chunkSize: Int) {
        chunks = stride(from: 0, to: bytes.count, by: chunkSize).map {
            ByteBuffer(bytes: bytes[$0..<Swift.min(bytes.count, $0 + chunkSize)])
        }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let chunks: [ByteBuffer]
        let delivered: DeliveryCounter
        var index = 0

        mutating func next() async -> ByteBuffer? {
            guard index < chunks.count else { return nil }
            defer { index += 1 }
            delivered.count.add(1, ordering: .relaxed)
            return chunks[index]
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunks: chunks, delivered: delivered) }
}

/// How many chunks a `ChunkedBody` handed out.
final class DeliveryCounter: Sendable {
    let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
}
