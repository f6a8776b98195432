/// Pixel dimensions read from an image's header, without decoding a single pixel.
///
/// Decoding is what an image "bomb" (a small file that claims 20000 x 20000 pixels) attacks, so limits are checked
/// against these numbers first. Each parser throws `UploadError.invalidImage` for corrupt or truncated headers.
struct ImageHeader: Equatable {
    let width: Int
    let height: Int

    /// Reads the dimensions of an image already sniffed as `format`.
    static func read(_ format: ImageFormat, from source: some ByteSource) throws -> ImageHeader {
        let header =
            switch format {
            case .png: try readPNG(source)
            case .jpeg: try readJPEG(source)
            case .webp: try readWebP(source)
            }
        guard header.width > 0, header.height > 0 else {
            throw UploadError.invalidImage("The \(format.rawValue) header gives a zero dimension.")
        }
        return header
    }

    // MARK: - PNG

    private static let pngTrailer: [UInt8] = [0, 0, 0, 0] + ascii("IEND") + [0xAE, 0x42, 0x60, 0x82]

    /// The 8-byte signature, then the mandatory first chunk `IHDR` (length 13): width, height as big-endian UInt32.
    /// A complete PNG ends with the empty `IEND` chunk; without it the file was cut short.
    private static func readPNG(_ source: some ByteSource) throws -> ImageHeader {
        guard let ihdr = try source.exactBytes(at: 8, length: 16) else {
            throw UploadError.invalidImage("The PNG file is truncated before its IHDR header.")
        }
        guard ihdr.bigEndian32(at: 0) == 13, ihdr[4..<8].elementsEqual(ascii("IHDR")) else {
            throw UploadError.invalidImage("The PNG file does not start with an IHDR header.")
        }
        guard try source.exactBytes(at: source.count - pngTrailer.count, length: pngTrailer.count) == pngTrailer else {
            throw UploadError.invalidImage("The PNG file is truncated (no IEND chunk at its end).")
        }
        return ImageHeader(width: ihdr.bigEndian32(at: 8), height: ihdr.bigEndian32(at: 12))
    }

    // MARK: - JPEG

    /// Start-of-frame markers that carry the dimensions: SOF0...SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    private static let startOfFrameMarkers: Set<UInt8> = [
        0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7,
        0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF,
    ]

    /// Walks the marker segments after SOI (`FF D8`), skipping each by its length, up to the first SOFn,
    /// whose payload is `precision(1) height(2) width(2)`. A scan (SOS) or end (EOI) before any SOFn is corrupt.
    private static func readJPEG(_ source: some ByteSource) throws -> ImageHeader {
        var offset = 2
        while true {
            // A marker is 0xFF (any number of fill 0xFF bytes) and a code.
            guard let first = try source.exactBytes(at: offset, length: 1) else { throw truncatedJPEG }
            guard first[0] == 0xFF else {
                throw UploadError.invalidImage("The JPEG file has no marker at byte \(offset).")
            }
            var marker: UInt8 = 0xFF
            while marker == 0xFF {
                offset += 1
                guard let next = try source.exactBytes(at: offset, length: 1) else { throw truncatedJPEG }
                marker = next[0]
            }
            offset += 1

            switch marker {
            case 0x01, 0xD0...0xD7:
                continue // standalone markers carry no length
            case 0xD8, 0xD9, 0xDA, 0x00:
                throw UploadError.invalidImage("The JPEG file has no frame header before its image data.")
            default:
                break
            }
            guard let lengthBytes = try source.exactBytes(at: offset, length: 2) else { throw truncatedJPEG }
            let length = lengthBytes.bigEndian16(at: 0) // counts its own two bytes
            guard length >= 2 else { throw UploadError.invalidImage("The JPEG file has a malformed segment length.") }

            if startOfFrameMarkers.contains(marker) {
                guard length >= 8 else { throw UploadError.invalidImage("The JPEG frame header is too short.") }
                guard let frame = try source.exactBytes(at: offset + 2, length: 5) else { throw truncatedJPEG }
                return ImageHeader(width: frame.bigEndian16(at: 3), height: frame.bigEndian16(at: 1))
            }
            offset += length
        }
    }

    private static var truncatedJPEG: UploadError {
        UploadError.invalidImage("The JPEG file is truncated before its frame header.")
    }

    // MARK: - WebP

    /// `RIFF size WEBP`, then the first chunk: `VP8 ` (lossy), `VP8L` (lossless) or `VP8X` (extended canvas).
    private static func readWebP(_ source: some ByteSource) throws -> ImageHeader {
        let riff = try source.bytes(at: 0, length: 30)
        guard riff.count >= 20 else {
            throw UploadError.invalidImage("The WebP file is truncated before its first chunk header.")
        }
        guard riff.littleEndian32(at: 4) + 8 <= source.count else {
            throw UploadError.invalidImage("The WebP file is truncated (shorter than its RIFF size).")
        }
        let chunk = String(decoding: riff[12..<16], as: UTF8.self)
        let payload = Array(riff[20...])
        let neededPayload = ["VP8 ": 10, "VP8L": 5, "VP8X": 10][chunk] ?? 0
        guard payload.count >= neededPayload else {
            throw UploadError.invalidImage("The WebP file is truncated inside its `\(chunk)` header.")
        }
        switch chunk {
        case "VP8 ":
            // Frame tag (3 bytes, bit 0 clear on a key frame), start code 9D 01 2A, 14-bit width and height.
            guard payload[0] & 0x01 == 0, payload[3..<6].elementsEqual([0x9D, 0x01, 0x2A]) else {
                throw UploadError.invalidImage("The WebP VP8 chunk does not start with a key frame.")
            }
            return ImageHeader(
                width: payload.littleEndian16(at: 6) & 0x3FFF,
                height: payload.littleEndian16(at: 8) & 0x3FFF)
        case "VP8L":
            // Signature 0x2F, then width-1 and height-1 as 14-bit fields of one little-endian word.
            guard payload[0] == 0x2F else {
                throw UploadError.invalidImage("The WebP VP8L chunk has a bad signature.")
            }
            let bits = payload.littleEndian32(at: 1)
            return ImageHeader(width: (bits & 0x3FFF) + 1, height: (bits >> 14 & 0x3FFF) + 1)
        case "VP8X":
            // Flags (1), reserved (3), canvas width-1 and height-1 as 24-bit little-endian.
            return ImageHeader(width: payload.littleEndian24(at: 4) + 1, height: payload.littleEndian24(at: 7) + 1)
        default:
            throw UploadError.invalidImage("The WebP file starts with an unknown chunk `\(chunk)`.")
        }
    }
}
