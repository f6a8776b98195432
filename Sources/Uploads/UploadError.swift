/// A rejected upload, with the HTTP status and the stable `code` of `docs/api.md`.
///
/// The service renders it as `{"error": {"code", "message", "field"}}`; clients switch on `code`.
public struct UploadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// HTTP status to answer with (400, 413, 415, 422, 500 or 507).
    public var status: Int
    /// Stable machine-readable code, e.g. `image_too_large`.
    public var code: String
    /// Human-readable explanation.
    public var message: String
    /// The form field at fault, when there is one.
    public var field: String?

    /// Creates an error; prefer the named factories below.
    public init(status: Int, code: String, message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    /// `status code: message`, for logs.
    public var description: String { "\(status) \(code): \(message)" }
}

// MARK: - Request shape

extension UploadError {
    /// 415: the request is not `multipart/form-data`.
    public static func unsupportedContentType(_ contentType: String?) -> UploadError {
        UploadError(
            status: 415, code: "unsupported_content_type",
            message: "Expected multipart/form-data, got \(contentType ?? "no Content-Type").")
    }

    /// 400: the body is not valid multipart.
    public static func invalidMultipart(_ message: String) -> UploadError {
        UploadError(status: 400, code: "invalid_multipart", message: message)
    }

    /// 413: the whole body is larger than the sum of the file caps plus overhead.
    public static func requestTooLarge(limit: Int) -> UploadError {
        UploadError(status: 413, code: "request_too_large", message: "The request body is larger than \(limit) bytes.")
    }

    /// 422: a text field is too long, or some option is not acceptable.
    public static func invalidParameter(_ field: String, _ message: String) -> UploadError {
        UploadError(status: 422, code: "invalid_parameter", message: message, field: field)
    }
}

// MARK: - Files

extension UploadError {
    /// 422 `missing_image` / `missing_audio`: a required file is absent or empty.
    public static func missingFile(_ kind: MediaKind, field: String) -> UploadError {
        UploadError(
            status: 422, code: "missing_\(kind.rawValue)",
            message: "The \(kind.rawValue) file `\(field)` is missing or empty.", field: field)
    }

    /// 413 `image_too_large` / `audio_too_large`: a file crossed its byte cap.
    public static func fileTooLarge(_ kind: MediaKind, field: String, limit: Int) -> UploadError {
        UploadError(
            status: 413, code: "\(kind.rawValue)_too_large",
            message: "The \(kind.rawValue) file `\(field)` is larger than \(limit) bytes.", field: field)
    }

    /// 415 `unsupported_image_format` / `unsupported_audio_format`: the bytes are not an accepted format.
    public static func unsupportedFormat(_ kind: MediaKind, field: String?, accepted: [String]) -> UploadError {
        UploadError(
            status: 415, code: "unsupported_\(kind.rawValue)_format",
            message: "The \(kind.rawValue) is not one of: \(accepted.joined(separator: ", ")).", field: field)
    }
}

// MARK: - Media content

extension UploadError {
    /// 422: a corrupt or truncated image header.
    public static func invalidImage(_ message: String, field: String? = "image") -> UploadError {
        UploadError(status: 422, code: "invalid_image", message: message, field: field)
    }

    /// 422: the image header names more pixels than allowed.
    public static func imageDimensionsTooLarge(
        width: Int, height: Int, maxWidth: Int, maxHeight: Int,
        field: String? = "image"
    ) -> UploadError {
        UploadError(
            status: 422, code: "image_dimensions_too_large",
            message: "The image is \(width)x\(height); at most \(maxWidth)x\(maxHeight) is allowed.", field: field)
    }

    /// 422: an image side is shorter than allowed.
    public static func imageDimensionsTooSmall(
        width: Int, height: Int, minSide: Int,
        field: String? = "image"
    ) -> UploadError {
        UploadError(
            status: 422, code: "image_dimensions_too_small",
            message: "The image is \(width)x\(height); each side must be at least \(minSide) pixels.", field: field)
    }

    /// 422: the audio cannot be probed (corrupt, truncated, or no audio stream).
    public static func invalidAudio(_ message: String, field: String? = "audio") -> UploadError {
        UploadError(status: 422, code: "invalid_audio", message: message, field: field)
    }

    /// 422: the audio is shorter than allowed.
    public static func audioTooShort(seconds: Double, minimum: Double, field: String? = "audio") -> UploadError {
        UploadError(
            status: 422, code: "audio_too_short",
            message: "The audio lasts \(formatted(seconds)) s; at least \(formatted(minimum)) s is needed.",
            field: field)
    }

    /// 422: the audio is longer than allowed; `seconds` is where decoding stopped, a little past `maximum`.
    public static func audioTooLong(seconds: Double, maximum: Double, field: String? = "audio") -> UploadError {
        UploadError(
            status: 422, code: "audio_too_long",
            message: "The audio lasts over \(formatted(maximum)) s (decoding stopped at \(formatted(seconds)) s); "
                + "at most \(formatted(maximum)) s is allowed.",
            field: field)
    }

    /// 500 `audio_probe_unavailable`: the server could not run its audio probe (e.g. ffmpeg missing).
    /// A server fault, not the client's.
    public static func probeUnavailable(_ message: String) -> UploadError {
        UploadError(status: 500, code: "audio_probe_unavailable", message: message)
    }

    /// 507 `insufficient_storage`: the server's disk is full (or nearly: below its low-disk watermark).
    /// A server condition, not the client's fault; the same request may succeed later.
    public static let insufficientStorage = UploadError(
        status: 507, code: "insufficient_storage",
        message: "The server is out of disk space and cannot store the upload; try again later.")

    private static func formatted(_ seconds: Double) -> String {
        String((seconds * 100).rounded() / 100)
    }
}
