/// An accepted image container, recognised from its first bytes (never from a filename or MIME type).
public enum ImageFormat: String, Sendable, Hashable, CaseIterable {
    /// JPEG (`FF D8 FF`).
    case jpeg
    /// PNG (the 8-byte signature).
    case png
    /// WebP (`RIFF....WEBP`): lossy, lossless or extended.
    case webp

    /// How many leading bytes `sniff(_:)` needs to decide.
    public static let sniffLength = 12

    /// Recognises the format from the file's first bytes, or `nil` if it is none of ours.
    public static func sniff(_ prefix: some Collection<UInt8>) -> ImageFormat? {
        let bytes = Array(prefix.prefix(sniffLength))
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if bytes.count >= 12, bytes[0..<4].elementsEqual(ascii("RIFF")), bytes[8..<12].elementsEqual(ascii("WEBP")) {
            return .webp
        }
        return nil
    }
}

/// The bytes of an ASCII tag such as `"RIFF"`.
func ascii(_ tag: String) -> [UInt8] { Array(tag.utf8) }
