/// Every limit applied to an upload, in one configurable value.
///
/// The defaults are the public contract's (`docs/api.md`, `GET /api/config`).
public struct UploadLimits: Sendable, Equatable {
    /// Largest accepted image file, in bytes (10 MiB).
    public var maxImageBytes: Int
    /// Largest accepted audio file, in bytes (50 MiB); applies to each audio field.
    public var maxAudioBytes: Int
    /// Largest accepted LoRA file (`POST /api/loras`), in bytes (2 GiB: a rank-128 LoRA of the 14B model in bf16 is
    /// about 1.2 GB).
    public var maxLoraBytes: Int
    /// Widest accepted image, in pixels, read from the header.
    public var maxImageWidth: Int
    /// Tallest accepted image, in pixels, read from the header.
    public var maxImageHeight: Int
    /// Shortest accepted image side, in pixels.
    public var minImageSide: Int
    /// Shortest accepted audio duration, in seconds.
    public var minAudioSeconds: Double
    /// Longest accepted audio duration, in seconds.
    public var maxAudioSeconds: Double
    /// Largest accepted text field (e.g. `prompt`), in bytes.
    public var maxFieldBytes: Int
    /// Most text fields accepted in one request; unknown fields count too.
    public var maxFieldCount: Int
    /// Largest header section of one multipart part, in bytes.
    public var maxPartHeaderBytes: Int
    /// Most header lines in one multipart part.
    public var maxPartHeaderLines: Int
    /// Room for part headers and text fields on top of the file caps when bounding a whole request body.
    public var requestOverheadBytes: Int

    /// Creates limits; every argument defaults to the public contract's value.
    public init(
        maxImageBytes: Int = 10 * 1024 * 1024,
        maxAudioBytes: Int = 50 * 1024 * 1024,
        maxLoraBytes: Int = 2 * 1024 * 1024 * 1024,
        maxImageWidth: Int = 4096,
        maxImageHeight: Int = 4096,
        minImageSide: Int = 64,
        minAudioSeconds: Double = 0.5,
        maxAudioSeconds: Double = 600,
        maxFieldBytes: Int = 64 * 1024,
        maxFieldCount: Int = 64,
        maxPartHeaderBytes: Int = 8 * 1024,
        maxPartHeaderLines: Int = 16,
        requestOverheadBytes: Int = 1024 * 1024
    ) {
        self.maxImageBytes = maxImageBytes
        self.maxAudioBytes = maxAudioBytes
        self.maxLoraBytes = maxLoraBytes
        self.maxImageWidth = maxImageWidth
        self.maxImageHeight = maxImageHeight
        self.minImageSide = minImageSide
        self.minAudioSeconds = minAudioSeconds
        self.maxAudioSeconds = maxAudioSeconds
        self.maxFieldBytes = maxFieldBytes
        self.maxFieldCount = maxFieldCount
        self.maxPartHeaderBytes = maxPartHeaderBytes
        self.maxPartHeaderLines = maxPartHeaderLines
        self.requestOverheadBytes = requestOverheadBytes
    }

    /// The byte cap for one file of `kind`.
    public func maxBytes(for kind: MediaKind) -> Int {
        switch kind {
        case .image: maxImageBytes
        case .audio: maxAudioBytes
        case .lora: maxLoraBytes
        }
    }
}

/// The kinds of file an upload carries; picks the limits and error codes that apply.
public enum MediaKind: String, Sendable, Hashable {
    /// The portrait: `maxImageBytes`, `*_image` codes.
    case image
    /// Speech: `maxAudioBytes`, `*_audio` codes.
    case audio
    /// A LoRA for the engine's library: `maxLoraBytes`, `*_lora` codes.
    case lora
}
