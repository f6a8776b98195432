/// A form field that carries a file, with where its bytes go and which limits and error codes apply.
///
/// Only fields listed as `FileField`s are written to disk (as `<directory>/<name>`); the client's filename is
/// recorded but never used as a path.
public struct FileField: Sendable, Hashable {
    /// The form field name, also the file name inside the upload directory.
    public var name: String
    /// Picks the byte cap (`maxImageBytes` / `maxAudioBytes`) and the error codes.
    public var kind: MediaKind
    /// Whether a request without this file (or with an empty one) is rejected as `missing_<kind>`.
    public var isRequired: Bool
    /// How many parts may carry this field (batches repeat `audio`); the n-th (n > 1) is kept as `<name>-<n>`.
    public var maxCount: Int

    /// Creates a file field. `name` must be a plain file name (letters, digits, `_`; no `-`, which numbers repeats).
    public init(_ name: String, kind: MediaKind, isRequired: Bool = true, maxCount: Int = 1) {
        precondition(
            !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" },
            "a file field name becomes a file name")
        precondition(maxCount >= 1)
        self.name = name
        self.kind = kind
        self.isRequired = isRequired
        self.maxCount = maxCount
    }

    /// The key (and file name) of this field's `occurrence`-th part (1-based): `audio`, `audio-2`, `audio-3`, ...
    public func key(occurrence: Int) -> String {
        occurrence == 1 ? name : "\(name)-\(occurrence)"
    }

    /// The required portrait, `image`.
    public static let image = FileField("image", kind: .image)
    /// The required speech, `audio`.
    public static let audio = FileField("audio", kind: .audio)
    /// An optional second speaker, `audio2`.
    public static let secondAudio = FileField("audio2", kind: .audio, isRequired: false)
    /// A LoRA for the engine's library (`POST /api/loras`), `file` (or `lora`: either name is taken).
    public static let loraFields = [
        FileField("file", kind: .lora, isRequired: false), FileField("lora", kind: .lora, isRequired: false),
    ]
    /// The fields of `POST /api/generate`: `image`, `audio`, optional `audio2`.
    public static let generateFields: [FileField] = [.image, .audio, .secondAudio]
}

/// One file written by `MultipartReceiver`.
public struct ReceivedFile: Sendable, Equatable {
    /// The form field it came from.
    public var field: String
    /// Where it was written: `<directory>/<field>`.
    public var path: String
    /// Its size in bytes (never 0: empty files count as missing).
    public var byteCount: Int
    /// The filename the client sent, for display and logs only; never a path.
    public var clientFilename: String?
    /// The part's `Content-Type` as the client sent it; not trusted (formats are sniffed).
    public var contentType: String?
}

/// Everything `MultipartReceiver.receive(_:)` collected from one request.
public struct ReceivedUpload: Sendable, Equatable {
    /// Files by form field name.
    public var files: [String: ReceivedFile]
    /// Text fields by name, UTF-8 decoded; unknown ones included (callers ignore them).
    public var fields: [String: String]
    /// Bytes of the whole body read.
    public var bodyBytes: Int
}
