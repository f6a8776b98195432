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
    /// Duration in seconds, as ffprobe reports it.
    public var durationSeconds: Double

    /// Creates an audio description.
    public init(format: AudioFormat, durationSeconds: Double) {
        self.format = format
        self.durationSeconds = durationSeconds
    }
}

/// Checks received files against `UploadLimits`: format from the bytes, image pixels from the header (never
/// decoded), audio duration from ffprobe. Every rejection is an `UploadError` with the code of `docs/api.md`.
///
/// ```swift
/// let validator = UploadValidator(limits: limits, ffprobePath: "ffprobe")
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
    ///   - ffprobePath: `ffprobe` as an absolute path, or a name looked up in `PATH`.
    ///   - probeTimeout: longest an ffprobe run may take before the audio is rejected as `invalid_audio`.
    public init(
        limits: UploadLimits = UploadLimits(), ffprobePath: String = "ffprobe",
        probeTimeout: Duration = .seconds(15)
    ) {
        self.limits = limits
        self.audioProbe = AudioProbe(executable: ffprobePath, timeout: probeTimeout)
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
        return ImageInfo(format: format, width: header.width, height: header.height)
    }

    /// Validates the audio file at `path`, probing its duration with ffprobe.
    /// - Parameter field: the form field named in errors (`audio`, `audio2`).
    /// - Throws: `UploadError`: `missing_audio`, `audio_too_large`, `unsupported_audio_format`, `invalid_audio`,
    ///   `audio_too_short`, `audio_too_long`; 500 `audio_probe_unavailable` when ffprobe cannot be run.
    public func validateAudio(at path: String, field: String = "audio") async throws -> AudioInfo {
        let source = try openFile(path, kind: .audio, field: field)
        guard let format = AudioFormat.sniff(try source.bytes(at: 0, length: AudioFormat.sniffLength)) else {
            throw UploadError.unsupportedFormat(.audio, field: field, accepted: AudioFormat.allCases.map(\.rawValue))
        }
        let seconds: Double
        do {
            seconds = try await audioProbe.durationSeconds(of: path)
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
