/// An accepted audio container, recognised from its first bytes (never from a filename or MIME type).
public enum AudioFormat: String, Sendable, Hashable, CaseIterable {
    /// RIFF/WAVE.
    case wav
    /// MPEG-1/2 Layer III, with or without an ID3v2 tag.
    case mp3
    /// AAC (or ALAC) in an ISO base media file (`ftyp` box).
    case m4a
    /// Raw AAC in ADTS frames.
    case aac
    /// Ogg (Vorbis or Opus).
    case ogg
    /// Native FLAC.
    case flac

    /// How many leading bytes `sniff(_:)` needs to decide.
    public static let sniffLength = 64

    /// ISO BMFF brands whose files carry audio we accept; checked against the major and compatible brands.
    static let isoAudioBrands: Set<String> = [
        "M4A ", "M4B ", "M4P ", "mp41", "mp42", "isom", "iso2", "iso4", "iso5",
        "iso6", "dash", "3gp4", "3gp5", "3gp6", "3g2a", "avc1", "qt  ", "MSNV",
    ]

    /// Recognises the format from the file's first bytes, or `nil` if it is none of ours.
    public static func sniff(_ prefix: some Collection<UInt8>) -> AudioFormat? {
        let bytes = Array(prefix.prefix(sniffLength))
        if bytes.count >= 12, bytes[0..<4].elementsEqual(ascii("RIFF")), bytes[8..<12].elementsEqual(ascii("WAVE")) {
            return .wav
        }
        if bytes.starts(with: ascii("OggS")) { return .ogg }
        if bytes.starts(with: ascii("fLaC")) { return .flac }
        if bytes.starts(with: ascii("ID3")) { return .mp3 }
        if isISOMediaWithAudioBrand(bytes) { return .m4a }
        if bytes.count >= 4, bytes[0] == 0xFF {
            if isADTSHeader(bytes) { return .aac }
            if isMPEGAudioFrameHeader(bytes) { return .mp3 }
        }
        return nil
    }

    /// `size(4) "ftyp" major(4) minor(4) compatible(4)*` with an audio-capable brand among them.
    private static func isISOMediaWithAudioBrand(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 12, bytes[4..<8].elementsEqual(ascii("ftyp")) else { return false }
        let boxSize = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        let end = min(bytes.count, max(boxSize, 12))
        var brands = [bytes[8..<12]]
        var offset = 16
        while offset + 4 <= end {
            brands.append(bytes[offset..<offset + 4])
            offset += 4
        }
        return brands.contains { isoAudioBrands.contains(String(decoding: $0, as: UTF8.self)) }
    }

    /// 12-bit sync `0xFFF`, layer `00`, a valid sampling-frequency index.
    private static func isADTSHeader(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 3, bytes[1] & 0xF6 == 0xF0 else { return false }
        let samplingIndex = (bytes[2] >> 2) & 0x0F
        return samplingIndex < 13
    }

    /// 11-bit sync, a defined MPEG version and layer, a bitrate index that is neither free nor bad, a defined rate.
    private static func isMPEGAudioFrameHeader(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 3, bytes[1] & 0xE0 == 0xE0 else { return false }
        let version = (bytes[1] >> 3) & 0x03
        let layer = (bytes[1] >> 1) & 0x03
        let bitrateIndex = bytes[2] >> 4
        let samplingIndex = (bytes[2] >> 2) & 0x03
        return version != 0b01 && layer != 0b00 && bitrateIndex != 0x0 && bitrateIndex != 0xF && samplingIndex != 0b11
    }
}
