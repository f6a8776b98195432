@testable import Uploads

/// Tiny image headers built byte by byte: bombs, corrupt and truncated files that no encoder would write.
enum HandBuiltImages {
    /// A PNG signature, an IHDR for `width` x `height`, one IDAT and (optionally) the IEND trailer, with correct
    /// CRCs. The IDAT holds an empty zlib stream: pixels are never decoded, so the file need not hold them.
    static func png(width: Int, height: Int, withEnd: Bool = true) -> [UInt8] {
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        bytes += pngChunk("IHDR", bigEndian32(width) + bigEndian32(height) + [8, 2, 0, 0, 0]) // depth 8, RGB
        bytes += pngChunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])
        if withEnd { bytes += pngChunk("IEND", []) }
        return bytes
    }

    /// A PNG chunk: `length type data crc`.
    static func pngChunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        var crc = CRC32()
        crc.update(Array(type.utf8) + data)
        return bigEndian32(data.count) + Array(type.utf8) + data + bigEndian32(Int(crc.checksum))
    }

    /// SOI, the given segments, then the rest (e.g. a scan).
    static func jpeg(_ segments: [[UInt8]]) -> [UInt8] {
        [0xFF, 0xD8] + segments.flatMap { $0 } + [0xFF, 0xD9]
    }

    /// A marker segment: `FF marker length payload`.
    static func segment(_ marker: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [0xFF, marker] + bigEndian16(payload.count + 2) + payload
    }

    /// An SOFn payload for `width` x `height`, 3 components.
    static func startOfFrame(_ marker: UInt8 = 0xC0, width: Int, height: Int) -> [UInt8] {
        segment(marker, [8] + bigEndian16(height) + bigEndian16(width) + [3, 1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1])
    }

    /// A JFIF APP0 segment.
    static let jfif = segment(0xE0, Array("JFIF".utf8) + [0, 1, 2, 0, 0, 1, 0, 1, 0, 0])

    /// A Huffman table segment (its contents are never read).
    static let huffmanTable = segment(0xC4, [0x00] + Array(repeating: 0, count: 16))

    /// A start-of-scan marker segment.
    static let startOfScan = segment(0xDA, [1, 1, 0, 0, 0x3F, 0])

    /// A WebP `VP8X` (extended) file declaring a `width` x `height` canvas.
    static func webpExtended(width: Int, height: Int) -> [UInt8] {
        let payload: [UInt8] = [0, 0, 0, 0] + littleEndian24(width - 1) + littleEndian24(height - 1)
        let chunk = Array("VP8X".utf8) + littleEndian32(payload.count) + payload
        return Array("RIFF".utf8) + littleEndian32(4 + chunk.count) + Array("WEBP".utf8) + chunk
    }

    private static func bigEndian16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    private static func bigEndian32(_ value: Int) -> [UInt8] { bigEndian16(value >> 16) + bigEndian16(value) }
    private static func littleEndian24(_ value: Int) -> [UInt8] {
        [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF)]
    }
    private static func littleEndian32(_ value: Int) -> [UInt8] { littleEndian24(value) + [UInt8(value >> 24 & 0xFF)] }
}

extension Array where Element == UInt8 {
    /// A copy with the byte at `index` replaced, to corrupt one field of a header.
    func replacing(at index: Int, with byte: UInt8) -> [UInt8] {
        var copy = self
        copy[index] = byte
        return copy
    }
}
