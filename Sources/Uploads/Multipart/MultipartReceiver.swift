import MultipartKit
import NIOCore
import NIOFileSystem

/// Streams a `multipart/form-data` body into files, never holding a whole file in memory.
///
/// Each `FileField` part is written to `<directory>/<field name>` (the client's filename never becomes a path);
/// a file that crosses its byte cap fails the request with 413 as soon as the chunk that crosses it is parsed,
/// and no partial file is left behind (files are created invisibly and only linked in once complete). Other parts
/// are text fields, each capped at `maxFieldBytes`. On any error every file this receiver wrote is removed; a full
/// disk (`ENOSPC`, `EDQUOT`) is reported as 507 `insufficient_storage`.
///
/// ```swift
/// let receiver = try MultipartReceiver(contentType: request.headers[.contentType], directory: jobDirectory)
/// try receiver.checkContentLength(request.headers[.contentLength].flatMap { Int($0) })
/// let upload = try await receiver.receive(request.body)
/// let image = upload.files["image"]!  // required fields are present, or receive threw
/// ```
public struct MultipartReceiver: Sendable {
    /// The multipart boundary, without the leading `--`.
    public let boundary: String
    /// An existing directory the files are written into (one per request).
    public let directory: String
    /// Byte and field limits.
    public let limits: UploadLimits
    /// Which parts are files; all others are text fields.
    public let fileFields: [FileField]
    /// Asked before each chunk of a file is written, with the chunk's size: throwing stops the upload (its files are
    /// removed). The service refuses uploads here once the disk is nearly full.
    public var beforeWriting: @Sendable (_ byteCount: Int) throws -> Void = { _ in }

    /// Creates a receiver for a known boundary.
    public init(
        boundary: String, directory: String, limits: UploadLimits = UploadLimits(),
        fileFields: [FileField] = FileField.generateFields
    ) {
        self.boundary = boundary
        self.directory = directory
        self.limits = limits
        self.fileFields = fileFields
    }

    /// Creates a receiver for a request's `Content-Type` header.
    /// - Throws: 415 `unsupported_content_type` or 400 `invalid_multipart`, see `boundary(fromContentType:)`.
    public init(
        contentType: String?, directory: String, limits: UploadLimits = UploadLimits(),
        fileFields: [FileField] = FileField.generateFields
    ) throws {
        self.init(
            boundary: try Self.boundary(fromContentType: contentType), directory: directory,
            limits: limits, fileFields: fileFields)
    }

    /// The largest body accepted: the sum of the file caps plus `requestOverheadBytes`.
    public var maxBodyBytes: Int {
        fileFields.reduce(limits.requestOverheadBytes) { $0 + limits.maxBytes(for: $1.kind) * $1.maxCount }
    }

    /// Rejects a declared `Content-Length` above `maxBodyBytes` before any byte is read.
    /// - Throws: 413 `request_too_large`.
    public func checkContentLength(_ contentLength: Int?) throws {
        if let contentLength, contentLength > maxBodyBytes {
            throw UploadError.requestTooLarge(limit: maxBodyBytes)
        }
    }

    /// Reads the whole body, writing file parts to disk and collecting text fields.
    /// - Parameter body: the request body, e.g. Hummingbird's `request.body`.
    /// - Returns: the files and fields; every required `FileField` is present and non-empty.
    /// - Throws: `UploadError`: 400 `invalid_multipart` (also for a part's header section over
    ///   `maxPartHeaderBytes` / `maxPartHeaderLines`), 413 `image_too_large` / `audio_too_large` /
    ///   `request_too_large`, 422 `missing_image` / `missing_audio` / `invalid_parameter`, 507
    ///   `insufficient_storage` when the disk is full; errors of the body sequence, of `beforeWriting` and of the
    ///   file system as they are.
    public func receive<Body: AsyncSequence>(_ body: Body) async throws -> ReceivedUpload
    where Body.Element == ByteBuffer {
        var writer = PartWriter(receiver: self)
        do {
            let upload = try await receive(body, into: &writer)
            return upload
        } catch {
            await writer.discardEverything()
            throw isOutOfSpace(error) ? UploadError.insufficientStorage : error
        }
    }

    private func receive<Body: AsyncSequence>(_ body: Body, into writer: inout PartWriter) async throws
        -> ReceivedUpload where Body.Element == ByteBuffer
    {
        let parser = MultipartParser(boundary: boundary)
        let events = PartEvents()
        events.attach(to: parser)
        var headerMeter = PartHeaderMeter(limits: limits)

        var bodyBytes = 0
        for try await chunk in body {
            bodyBytes += chunk.readableBytes
            if bodyBytes > maxBodyBytes { throw UploadError.requestTooLarge(limit: maxBodyBytes) }
            try headerMeter.parse(chunk, with: parser, events: events)
            for event in events.drain() {
                try await writer.handle(event)
            }
        }
        guard events.completedParts > 0, !events.isInsidePart, !events.hasPendingHeaders else {
            throw UploadError.invalidMultipart("The multipart body ends before its closing boundary.")
        }
        for field in fileFields where field.isRequired && writer.files[field.name] == nil {
            throw UploadError.missingFile(field.kind, field: field.name)
        }
        return ReceivedUpload(files: writer.files, fields: writer.fields, bodyBytes: bodyBytes)
    }

    // MARK: - Content-Type

    /// The boundary of a `multipart/form-data` `Content-Type` header value.
    /// - Throws: 415 `unsupported_content_type` for any other type; 400 `invalid_multipart` when the boundary is
    ///   missing or not 1...70 characters of the RFC 2046 set.
    public static func boundary(fromContentType contentType: String?) throws -> String {
        guard let contentType else { throw UploadError.unsupportedContentType(nil) }
        let header = HeaderValue(parsing: contentType)
        guard header.value == "multipart/form-data" else { throw UploadError.unsupportedContentType(contentType) }
        guard let boundary = header.parameters["boundary"] else {
            throw UploadError.invalidMultipart("The Content-Type has no boundary parameter.")
        }
        let allowed = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ")
        guard (1...70).contains(boundary.count), boundary.allSatisfy(allowed.contains), boundary.last != " " else {
            throw UploadError.invalidMultipart("The multipart boundary is empty, too long or has invalid characters.")
        }
        return boundary
    }
}
