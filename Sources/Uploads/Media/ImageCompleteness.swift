/// Checks that an image file is whole, by walking its structure, never decoding a pixel.
///
/// `ImageHeader` only reads the dimensions; a file cut short after them (a truncated JPEG, or a truncated PNG with
/// an `IEND` chunk glued on) would pass it and fail later in the engine. Each check reads the file once, in
/// blocks, and throws `UploadError.invalidImage`.
enum ImageCompleteness {
    static func check(_ format: ImageFormat, _ source: some ByteSource) throws {
        switch format {
        case .png: try checkPNG(source)
        case .jpeg: try checkJPEG(source)
        case .webp: break // `ImageHeader` already holds a WebP to its RIFF size.
        }
    }

    private static let blockBytes = 64 * 1024

    // MARK: - PNG

    /// After the signature, chunks of `length(4) type(4) data(length) crc(4)`, the CRC over type and data; the
    /// last is `IEND`, at the very end. A cut inside a chunk makes its length run past the end (or, if the
    /// length was patched, its CRC wrong).
    private static func checkPNG(_ source: some ByteSource) throws {
        var offset = 8
        var sawImageData = false
        while true {
            guard let header = try source.exactBytes(at: offset, length: 8) else { throw truncatedPNG }
            let length = header.bigEndian32(at: 0)
            let type = String(decoding: header[4..<8], as: UTF8.self)
            guard length <= Int(Int32.max), offset + 12 + length <= source.count else { throw truncatedPNG }

            var crc = CRC32()
            crc.update(header[4..<8])
            var dataOffset = offset + 8
            while dataOffset < offset + 8 + length {
                crc.update(try source.bytes(at: dataOffset, length: min(blockBytes, offset + 8 + length - dataOffset)))
                dataOffset += blockBytes
            }
            guard let stored = try source.exactBytes(at: offset + 8 + length, length: 4),
                UInt32(stored.bigEndian32(at: 0)) == crc.checksum
            else {
                throw UploadError.invalidImage("The PNG file is corrupt (the `\(type)` chunk fails its CRC).")
            }
            offset += 12 + length

            if type == "IDAT" { sawImageData = true }
            if type == "IEND" {
                guard sawImageData, offset == source.count else { throw truncatedPNG }
                return
            }
        }
    }

    private static var truncatedPNG: UploadError {
        UploadError.invalidImage("The PNG file is truncated or corrupt (its chunks do not end with IEND).")
    }

    // MARK: - JPEG

    /// Marker segments from SOI, each skipped by its length; after each start-of-scan (SOS), the entropy-coded
    /// data runs to the next marker (`FF` followed by anything but `00`, a restart marker or a fill `FF`). The
    /// file is whole when an end-of-image (EOI) marker follows scan data.
    private static func checkJPEG(_ source: some ByteSource) throws {
        var offset = 2
        var sawScan = false
        while true {
            guard let first = try source.exactBytes(at: offset, length: 1), first[0] == 0xFF else {
                throw truncatedJPEG
            }
            var marker: UInt8 = 0xFF
            while marker == 0xFF {
                offset += 1
                guard let next = try source.exactBytes(at: offset, length: 1) else { throw truncatedJPEG }
                marker = next[0]
            }
            offset += 1

            switch marker {
            case 0xD9:
                guard sawScan else { throw truncatedJPEG }
                return
            case 0x01, 0xD0...0xD7:
                continue
            default:
                guard let lengthBytes = try source.exactBytes(at: offset, length: 2) else { throw truncatedJPEG }
                offset += lengthBytes.bigEndian16(at: 0)
                if marker == 0xDA {
                    sawScan = true
                    guard let end = try endOfScanData(from: offset, source) else { throw truncatedJPEG }
                    offset = end
                }
            }
        }
    }

    /// The offset of the marker that ends the entropy-coded data starting at `start`, or `nil` at the file's end.
    private static func endOfScanData(from start: Int, _ source: some ByteSource) throws -> Int? {
        var offset = start
        while true {
            // One byte of overlap, so a marker split between two blocks is still seen.
            let block = try source.bytes(at: offset, length: blockBytes + 1)
            guard block.count >= 2 else { return nil }
            for index in 0..<block.count - 1 where block[index] == 0xFF {
                let next = block[index + 1]
                if next != 0x00, next != 0xFF, !(0xD0...0xD7).contains(next) { return offset + index }
            }
            offset += block.count - 1
        }
    }

    private static var truncatedJPEG: UploadError {
        UploadError.invalidImage("The JPEG file is truncated or corrupt (no end-of-image marker after its scan).")
    }
}

/// CRC-32 (ISO-HDLC: polynomial 0xEDB88320 reflected), as PNG chunks carry it.
struct CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }
    private var state: UInt32 = 0xFFFF_FFFF

    mutating func update(_ bytes: some Sequence<UInt8>) {
        for byte in bytes { state = Self.table[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8) }
    }

    var checksum: UInt32 { state ^ 0xFFFF_FFFF }
}
