import Foundation
import NIOCore
import NIOFileSystem
import Synchronization
import Testing

@testable import Uploads

@Suite("MultipartReceiver streams a form into files")
struct MultipartReceiverTests {
    /// Small caps, so crossing them takes kilobytes rather than megabytes.
    static let smallLimits = UploadLimits(
        maxImageBytes: 10_000, maxAudioBytes: 20_000, maxFieldBytes: 100,
        maxFieldCount: 4, requestOverheadBytes: 4_000)

    private func receive(
        _ bytes: [UInt8], chunkSize: Int = 4096, limits: UploadLimits = smallLimits,
        into directory: TemporaryDirectory
    ) async throws -> ReceivedUpload {
        let receiver = MultipartReceiver(boundary: MultipartBody.boundary, directory: directory.path, limits: limits)
        return try await receiver.receive(ChunkedBody(bytes, chunkSize: chunkSize))
    }

    // MARK: - Accepted forms

    @Test("files land byte for byte in <dir>/<field>, at any chunk size", arguments: [1, 7, 1000, 65536])
    func filesAreWrittenExactly(chunkSize: Int) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // Bytes that look like the start of a boundary must pass through as data.
        let tricky = Array("\r\n--spec-bound\r\n-\r\r\n\n--".utf8)
        var generator = SystemRandomNumberGenerator()
        let image = tricky + (0..<3000).map { _ in UInt8.random(in: 0...255, using: &generator) } + tricky
        let audio = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &generator) } + [0x0D]

        let upload = try await receive(
            MultipartBody.typical(image: image, audio: audio).finished(),
            chunkSize: chunkSize, into: directory)

        #expect(try directory.contents() == ["audio", "image"])
        #expect(try fileBytes(directory.path + "/image") == image)
        #expect(try fileBytes(directory.path + "/audio") == audio)
        #expect(
            upload.files["image"]
                == ReceivedFile(
                    field: "image", path: directory.path + "/image",
                    byteCount: image.count, clientFilename: "face.png",
                    contentType: "image/png"))
        #expect(upload.files["audio"]?.byteCount == audio.count)
        #expect(upload.fields == ["prompt": "A person is talking."])
    }

    @Test("text fields are collected as UTF-8, unknown ones included")
    func textFields() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addField("negative_prompt", "blurry, ünscharf, 模糊")
        body.addField("favourite_colour", "green")

        let upload = try await receive(body.finished(), into: directory)

        #expect(upload.fields["negative_prompt"] == "blurry, ünscharf, 模糊")
        #expect(upload.fields["favourite_colour"] == "green")
        #expect(upload.fields["prompt"] == "A person is talking.")
    }

    @Test("the optional audio2 is written when present")
    func secondAudio() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addFile("audio2", bytes: [9, 9, 9])

        let upload = try await receive(body.finished(), into: directory)

        #expect(upload.files["audio2"]?.path == directory.path + "/audio2")
        #expect(try fileBytes(directory.path + "/audio2") == [9, 9, 9])
    }

    @Test("a file exactly at its cap is accepted")
    func fileAtCap() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let body = MultipartBody.typical(image: Array(repeating: 7, count: Self.smallLimits.maxImageBytes))

        let upload = try await receive(body.finished(), into: directory)

        #expect(upload.files["image"]?.byteCount == Self.smallLimits.maxImageBytes)
    }

    @Test(
        "a client filename with ../ never becomes a path",
        arguments: [
            "../../../../tmp/escaped.png", "/etc/passwd", "..", "a/b\\c.png", "", "semi;colon=.png",
        ])
    func filenamesNeverEscape(filename: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody()
        body.addFile("image", filename: filename, bytes: [1, 2, 3])
        body.addFile("audio", filename: filename, bytes: [4, 5, 6])

        let upload = try await receive(body.finished(), into: directory)

        #expect(try directory.contents() == ["audio", "image"])
        #expect(upload.files["image"]?.clientFilename == filename)
        #expect(upload.files["image"]?.path == directory.path + "/image")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/escaped.png"))
    }

    @Test("an unknown file part is read past and not written")
    func unknownFilesAreDropped() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addFile("avatar", filename: "x.png", bytes: Array(repeating: 3, count: 500))

        let upload = try await receive(body.finished(), into: directory)

        #expect(try directory.contents() == ["audio", "image"])
        #expect(upload.files["avatar"] == nil)
        #expect(upload.fields["avatar"] == nil)
    }

    @Test("a preamble before the first boundary is ignored")
    func preamble() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let bytes = Array("This is a preamble.\r\n".utf8) + MultipartBody.typical().finished()

        let upload = try await receive(bytes, into: directory)

        #expect(upload.files.count == 2)
    }

    // MARK: - Caps

    @Test(
        "crossing a file's cap fails with 413 mid-stream, leaving no file behind",
        arguments: [
            ("image", "image_too_large"), ("audio", "audio_too_large"), ("audio2", "audio_too_large"),
        ])
    func capCrossedMidStream(field: String, code: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addFile(field == "image" ? "audio2" : "unused", bytes: [1]) // keeps the form otherwise valid
        var oversized = MultipartBody()
        oversized.addFile(field, bytes: Array(repeating: 0x41, count: 400_000))
        // The oversized part comes first, and is 20x any cap: reading it all would be wasted work.
        let bytes = oversized.bytes + body.finished()
        let limits = UploadLimits(maxImageBytes: 10_000, maxAudioBytes: 20_000, requestOverheadBytes: 1_000_000)
        let chunked = ChunkedBody(bytes, chunkSize: 1000)
        let receiver = MultipartReceiver(boundary: MultipartBody.boundary, directory: directory.path, limits: limits)

        let error = await #expect(throws: UploadError.self) { try await receiver.receive(chunked) }

        #expect(error?.status == 413)
        #expect(error?.code == code)
        #expect(error?.field == field)
        #expect(chunked.delivered.value <= 22, "stopped right after the cap, not at the end of the body")
        #expect(try directory.contents() == [])
    }

    @Test("files completed before the error are removed too")
    func earlierFilesAreRemovedOnError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody()
        body.addFile("image", bytes: [1, 2, 3])
        body.addFile("audio", bytes: Array(repeating: 0, count: Self.smallLimits.maxAudioBytes + 1))

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.code == "audio_too_large")
        #expect(try directory.contents() == [])
    }

    @Test(
        "the disk filling up mid-file (ENOSPC, EDQUOT) is 507 insufficient_storage, leaving no file behind",
        arguments: [ENOSPC, EDQUOT])
    func diskFullMidFile(errno: Int32) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody()
        body.addFile("image", bytes: [1, 2, 3])
        body.addFile("audio", bytes: Array(repeating: 7, count: 10_000))
        var receiver = MultipartReceiver(
            boundary: MultipartBody.boundary, directory: directory.path, limits: Self.smallLimits)
        // The file system fails the way NIO reports a failed write(2), once the image is stored and audio is coming.
        let written = ByteTally()
        receiver.beforeWriting = { byteCount in
            guard written.add(byteCount) > 1_000 else { return }
            throw FileSystemError(
                code: .unknown, message: "write failed",
                cause: FileSystemError.SystemCallError(systemCall: "write", errno: Errno(rawValue: errno)),
                location: .init(function: #function, file: #fileID, line: #line))
        }

        let error = await #expect(throws: UploadError.self) {
            try await receiver.receive(ChunkedBody(body.finished(), chunkSize: 512))
        }

        #expect(error == .insufficientStorage)
        #expect(error?.status == 507)
        #expect(try directory.contents() == [], "the image written before and the partial audio are both removed")
    }

    @Test("errors of beforeWriting that are not about space pass through unchanged")
    func otherWriteErrorsPassThrough() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var receiver = MultipartReceiver(
            boundary: MultipartBody.boundary, directory: directory.path, limits: Self.smallLimits)
        receiver.beforeWriting = { _ in throw POSIXError(.EIO) }

        await #expect(throws: POSIXError(.EIO)) {
            try await receiver.receive(ChunkedBody(MultipartBody.typical().finished(), chunkSize: 512))
        }
        #expect(try directory.contents() == [])
    }

    @Test("a text field over maxFieldBytes is 422 invalid_parameter naming the field")
    func textFieldCap() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addField("negative_prompt", String(repeating: "x", count: Self.smallLimits.maxFieldBytes + 1))

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.status == 422)
        #expect(error?.code == "invalid_parameter")
        #expect(error?.field == "negative_prompt")
    }

    @Test("a body longer than the sum of the caps is 413 request_too_large, even without Content-Length")
    func wholeBodyCap() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addFile("padding", bytes: Array(repeating: 0, count: 100_000)) // an ignored part, but still bytes

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.status == 413)
        #expect(error?.code == "request_too_large")
    }

    @Test("a declared Content-Length above the sum of the caps is refused before reading")
    func contentLengthCheck() throws {
        let receiver = MultipartReceiver(boundary: "b", directory: "/nonexistent", limits: Self.smallLimits)
        // image + audio + audio2 + overhead
        #expect(receiver.maxBodyBytes == 10_000 + 20_000 + 20_000 + 4_000)

        try receiver.checkContentLength(nil)
        try receiver.checkContentLength(receiver.maxBodyBytes)
        let error = #expect(throws: UploadError.self) { try receiver.checkContentLength(receiver.maxBodyBytes + 1) }
        #expect(error?.code == "request_too_large")
    }

    @Test("more form fields than maxFieldCount is 400 invalid_multipart")
    func fieldCountCap() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        for index in 0..<Self.smallLimits.maxFieldCount + 3 { body.addField("f\(index)", "x") }

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.code == "invalid_multipart")
    }

    @Test("a client that disconnects mid-file (task cancelled) leaves no file behind")
    func cancelledMidFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody()
        body.addFile("image", bytes: [1, 2, 3])
        body.append("--\(MultipartBody.boundary)\r\nContent-Disposition: form-data; name=\"audio\"\r\n\r\n")
        body.bytes += Array(repeating: 0x42, count: 5000)
        let (stalled, stall) = AsyncStream.makeStream(of: Void.self)
        let receiver = MultipartReceiver(
            boundary: MultipartBody.boundary, directory: directory.path,
            limits: Self.smallLimits)

        let upload = Task { try await receiver.receive(StallingBody(bytes: body.bytes, stalled: stall)) }
        // Once the receiver asks for more, it has written all it was sent: the image and part of the audio.
        for await _ in stalled { break }
        upload.cancel()
        let result = await upload.result

        #expect(throws: (any Error).self) { try result.get() }
        #expect(try directory.contents() == [])
    }

    // MARK: - Missing parts

    @Test(
        "a required file that is absent is 422 missing_<kind>",
        arguments: [
            ("image", "missing_image"), ("audio", "missing_audio"),
        ])
    func missingFile(absent: String, code: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody()
        if absent != "image" { body.addFile("image", bytes: [1]) }
        if absent != "audio" { body.addFile("audio", bytes: [2]) }
        body.addField("prompt", "hi")

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.status == 422)
        #expect(error?.code == code)
        #expect(error?.field == absent)
        #expect(try directory.contents() == [])
    }

    @Test("an empty file counts as missing and leaves no file")
    func emptyFileIsMissing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let body = MultipartBody.typical(image: [])

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.code == "missing_image")
        #expect(try directory.contents() == [])
    }

    @Test("a file sent as a plain field (no filename) still counts as the file")
    func fileWithoutFilename() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody()
        body.addRawField("image", [1, 2])
        body.addRawField("audio", [3, 4])

        let upload = try await receive(body.finished(), into: directory)

        #expect(upload.files["image"]?.clientFilename == nil)
        #expect(try fileBytes(directory.path + "/audio") == [3, 4])
    }

    // MARK: - Malformed bodies

    @Test(
        "bodies that are not multipart are 400 invalid_multipart",
        arguments: [
            ("empty", ""),
            ("plain text", "just some text, no boundary at all"),
            ("json", #"{"image": "data"}"#),
        ])
    func notMultipart(_ description: String, body: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(Array(body.utf8), into: directory)
        }

        #expect(error?.status == 400)
        #expect(error?.code == "invalid_multipart")
    }

    @Test("a body cut off before its closing boundary is 400, and what was written is removed")
    func truncatedBody() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let whole = MultipartBody.typical().finished()
        let cut = Array(whole.prefix(whole.count - 30))

        let error = await #expect(throws: UploadError.self) { _ = try await receive(cut, into: directory) }

        #expect(error?.code == "invalid_multipart")
        #expect(try directory.contents() == [])
    }

    @Test(
        "broken part headers are 400 invalid_multipart",
        arguments: [
            "--\(MultipartBody.boundary)\r\nContent-Disposition form-data\r\n\r\nx\r\n--\(MultipartBody.boundary)--",
            "--\(MultipartBody.boundary)\r\nBad Header: 1\r\n\r\nx\r\n--\(MultipartBody.boundary)--",
            "--\(MultipartBody.boundary)XX\r\n",
        ])
    func brokenHeaders(body: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(Array(body.utf8), into: directory)
        }

        #expect(error?.code == "invalid_multipart")
    }

    @Test(
        "a part without a form-data name is 400 invalid_multipart",
        arguments: [
            "Content-Type: text/plain",
            "Content-Disposition: attachment; name=\"image\"",
            "Content-Disposition: form-data; filename=\"a.png\"",
        ])
    func partWithoutName(header: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.append("--\(MultipartBody.boundary)\r\n\(header)\r\n\r\nvalue\r\n")

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.code == "invalid_multipart")
    }

    // MARK: - Part headers

    /// Header caps of a few kilobytes, with room for bodies far larger than them.
    static let headerLimits = UploadLimits(
        maxImageBytes: 200_000, maxPartHeaderBytes: 2000, maxPartHeaderLines: 8, requestOverheadBytes: 10_000_000)

    @Test("one huge header line is 400 invalid_multipart after about the cap, not after the whole line")
    func hugeHeaderLine() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody()
        body.addFile("audio2", extraHeaders: ["X-Filler: " + String(repeating: "a", count: 5_000_000)], bytes: [1])
        let chunked = ChunkedBody(MultipartBody.typical().bytes + body.finished(), chunkSize: 1000)
        let receiver = MultipartReceiver(
            boundary: MultipartBody.boundary, directory: directory.path, limits: Self.headerLimits)

        let error = await #expect(throws: UploadError.self) { try await receiver.receive(chunked) }

        #expect(error?.status == 400)
        #expect(error?.code == "invalid_multipart")
        #expect(error?.message.contains("headers are longer than 2000 bytes") == true)
        #expect(chunked.delivered.value <= 10, "stopped a slice past the cap, not at the end of the 5 MB line")
        #expect(try directory.contents() == [])
    }

    @Test("a part with more header lines than the cap is 400 invalid_multipart")
    func tooManyHeaderLines() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addFile("audio2", extraHeaders: (1...20).map { "X-Line-\($0): 1" }, bytes: [1])

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), limits: Self.headerLimits, into: directory)
        }

        #expect(error?.code == "invalid_multipart")
        #expect(error?.message.contains("more than 8 header lines") == true)
    }

    @Test("headers just under the caps and bodies far over them are fine", arguments: [1, 1000, 65536])
    func headersUnderTheCaps(chunkSize: Int) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // Two lines of Content-Disposition and Content-Type, plus five: seven lines, about 1900 bytes.
        let filler = (1...5).map { "X-Filler-\($0): " + String(repeating: "b", count: 340) }
        var body = MultipartBody()
        body.addFile("image", extraHeaders: filler, bytes: Array(repeating: 7, count: 150_000))
        body.addFile("audio", extraHeaders: filler, bytes: Array(repeating: 8, count: 20_000))

        let upload = try await receive(
            body.finished(), chunkSize: chunkSize, limits: Self.headerLimits, into: directory)

        #expect(upload.files["image"]?.byteCount == 150_000)
        #expect(upload.files["audio"]?.byteCount == 20_000)
    }

    @Test("a field given twice is 422 invalid_parameter")
    func duplicateField() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addFile("image", bytes: [5])

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.code == "invalid_parameter")
        #expect(error?.field == "image")
        #expect(try directory.contents() == [])
    }

    @Test("a text field that is not UTF-8 is 422 invalid_parameter")
    func nonUTF8Field() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var body = MultipartBody.typical()
        body.addRawField("negative_prompt", [0xC3, 0x28, 0xFF])

        let error = await #expect(throws: UploadError.self) {
            _ = try await receive(body.finished(), into: directory)
        }

        #expect(error?.code == "invalid_parameter")
        #expect(error?.field == "negative_prompt")
    }
}

/// A body that sends `bytes` and then nothing more, like a client that stalls; `stalled` hears when the reader asks
/// for more (it has taken in everything sent). Ends with `CancellationError` once the reading task is cancelled.
private struct StallingBody: AsyncSequence, Sendable {
    let bytes: [UInt8]
    let stalled: AsyncStream<Void>.Continuation

    struct AsyncIterator: AsyncIteratorProtocol {
        var bytes: [UInt8]?
        let stalled: AsyncStream<Void>.Continuation

        mutating func next() async throws -> ByteBuffer? {
            if let bytes {
                self.bytes = nil
                return ByteBuffer(bytes: bytes)
            }
            stalled.yield()
            let (never, keepOpen) = AsyncStream.makeStream(of: Void.self)
            for await _ in never {} // ends only when the task is cancelled
            withExtendedLifetime(keepOpen) {}
            throw CancellationError()
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(bytes: bytes, stalled: stalled)
    }
}

/// Bytes counted from a `Sendable` closure.
private final class ByteTally: Sendable {
    private let total = Atomic<Int>(0)

    /// Adds `count`; returns the new total.
    func add(_ count: Int) -> Int { total.add(count, ordering: .relaxed).newValue }
}
