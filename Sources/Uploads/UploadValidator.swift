import Foundation

/// What `UploadValidator.validateImage(at:)` learned from an accepted image.
public struct ImageInfo: Sendable, Equatable {
    /// The sniffed container.
    public var format: ImageFormat
    /// Width in pixels, from the header.
    public var width: Int
    /// Height in pixels, from the header.
    public var height: Int

    /// Creates an image description.
    public init(format: ImageFormat, width: Int, height: Int) {
        self.format = format
        self.width = width
        self.height = height
    }
}

/// What `UploadValidator.validateAudio(at:)` learned from an accepted audio file.
public struct AudioInfo: Sendable, Equatable {
    /// The sniffed container.
    public var format: AudioFormat
    /// Duration in seconds, as decoded (never the header's claim).
    public var durationSeconds: Double

    /// Creates an audio description.
    public init(format: AudioFormat, durationSeconds: Double) {
        self.format = format
        self.durationSeconds = durationSeconds
    }
}

/// Checks received files against `UploadLimits`: format from the bytes, image pixels from the header and the
/// image's structure walked to its end (never decoded), audio duration by decoding it with ffmpeg. Every rejection is an `UploadError` with the code of `docs/api.md`.
///
/// ```swift
/// let validator = UploadValidator(limits: limits, ffmpegPath: "ffmpeg")
/// let image = try validator.validateImage(at: upload.files["image"]!.path)
/// let audio = try await validator.validateAudio(at: upload.files["audio"]!.path)
/// ```
public struct UploadValidator: Sendable {
    /// The limits enforced.
    public let limits: UploadLimits
    private let audioProbe: AudioProbe

    /// Creates a validator.
    /// - Parameters:
    ///   - limits: byte, pixel and duration limits.
    ///   - ffmpegPath: `ffmpeg` as an absolute path, or a name looked up in `PATH`.
    ///   - probeTimeout: longest decoding the audio may take before it is rejected as `invalid_audio` (a guard
    ///     against a hung decoder: decoding stops a second past `maxAudioSeconds`).
    public init(
        limits: UploadLimits = UploadLimits(), ffmpegPath: String = "ffmpeg",
        probeTimeout: Duration = .seconds(60)
    ) {
        self.limits = limits
        self.audioProbe = AudioProbe(executable: ffmpegPath, timeout: probeTimeout)
    }

    /// Validates the image file at `path`.
    /// - Parameter field: the form field named in errors.
    /// - Throws: `UploadError`: `missing_image`, `image_too_large`, `unsupported_image_format`, `invalid_image`,
    ///   `image_dimensions_too_large`, `image_dimensions_too_small`.
    public func validateImage(at path: String, field: String = "image") throws -> ImageInfo {
        let source = try openFile(path, kind: .image, field: field)
        guard let format = ImageFormat.sniff(try source.bytes(at: 0, length: ImageFormat.sniffLength)) else {
            throw UploadError.unsupportedFormat(.image, field: field, accepted: ImageFormat.allCases.map(\.rawValue))
        }
        let header: ImageHeader
        do {
            header = try ImageHeader.read(format, from: source)
        } catch var error as UploadError {
            error.field = field
            throw error
        }
        if header.width > limits.maxImageWidth || header.height > limits.maxImageHeight {
            throw UploadError.imageDimensionsTooLarge(
                width: header.width, height: header.height,
                maxWidth: limits.maxImageWidth,
                maxHeight: limits.maxImageHeight, field: field)
        }
        if min(header.width, header.height) < limits.minImageSide {
            throw UploadError.imageDimensionsTooSmall(
                width: header.width, height: header.height,
                minSide: limits.minImageSide, field: field)
        }
        do {
            try ImageCompleteness.check(format, source)
        } catch var error as UploadError {
            error.field = field
            throw error
        }
        return ImageInfo(format: format, width: header.width, height: header.height)
    }

    /// Validates the audio file at `path`, measuring its duration by decoding it with ffmpeg.
    /// - Parameter field: the form field named in errors (`audio`, `audio2`).
    /// - Throws: `UploadError`: `missing_audio`, `audio_too_large`, `unsupported_audio_format`, `invalid_audio`,
    ///   `audio_too_short`, `audio_too_long`; 500 `audio_probe_unavailable` when ffmpeg cannot be run.
    public func validateAudio(at path: String, field: String = "audio") async throws -> AudioInfo {
        let source = try openFile(path, kind: .audio, field: field)
        guard let format = AudioFormat.sniff(try source.bytes(at: 0, length: AudioFormat.sniffLength)) else {
            throw UploadError.unsupportedFormat(.audio, field: field, accepted: AudioFormat.allCases.map(\.rawValue))
        }
        let seconds: Double
        do {
            seconds = try await audioProbe.decodedSeconds(of: path, maxSeconds: limits.maxAudioSeconds)
        } catch var error as UploadError where error.code == "invalid_audio" {
            error.field = field
            throw error
        }
        if seconds < limits.minAudioSeconds {
            throw UploadError.audioTooShort(seconds: seconds, minimum: limits.minAudioSeconds, field: field)
        }
        if seconds > limits.maxAudioSeconds {
            throw UploadError.audioTooLong(seconds: seconds, maximum: limits.maxAudioSeconds, field: field)
        }
        return AudioInfo(format: format, durationSeconds: seconds)
    }

    /// Opens the file and applies the byte limits that hold even when it did not come through `MultipartReceiver`.
    private func openFile(_ path: String, kind: MediaKind, field: String) throws -> FileBytes {
        guard let source = try? FileBytes(path: path), source.count > 0 else {
            throw UploadError.missingFile(kind, field: field)
        }
        guard source.count <= limits.maxBytes(for: kind) else {
            throw UploadError.fileTooLarge(kind, field: field, limit: limits.maxBytes(for: kind))
        }
        return source
    }
}
