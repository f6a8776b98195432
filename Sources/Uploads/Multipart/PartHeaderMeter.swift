import MultipartKit
import NIOCore

/// Caps the bytes of each part's header section, so a hostile part is refused after a few kilobytes (the number
/// of header lines, which these bytes bound, is checked when the part begins: `PartWriter`).
///
/// MultipartKit keeps a header line in an array that it copies on every `execute` call and has no limit of its
/// own, so one 60 MB header line costs memory and time that grow with the square of its length. The meter feeds
/// the parser in small slices and, after each, counts the bytes parsed while no part body is open (a part's
/// headers, or the preamble and epilogue around the parts); a body byte resets the count. A slice that ends in a
/// header section may also hold the end of the previous body, so the count can run over by one slice: the cap
/// is checked with that much room, and parsing stays linear in the body's size.
struct PartHeaderMeter {
    /// Largest piece handed to the parser at once.
    static let sliceBytes = 1024

    let maxBytes: Int
    private var bytesOutsideBodies = 0

    init(limits: UploadLimits) {
        maxBytes = limits.maxPartHeaderBytes
    }

    /// Parses `chunk` slice by slice, refusing a header section over the cap as soon as it is seen.
    /// - Throws: 400 `invalid_multipart` for an oversized header section or invalid multipart syntax.
    mutating func parse(_ chunk: ByteBuffer, with parser: MultipartParser, events: PartEvents) throws {
        var rest = chunk
        while let slice = rest.readSlice(length: min(rest.readableBytes, Self.sliceBytes)), slice.readableBytes > 0 {
            do {
                try parser.execute(slice)
            } catch {
                throw UploadError.invalidMultipart("The body is not valid multipart/form-data.")
            }
            bytesOutsideBodies = events.isInsidePart ? 0 : bytesOutsideBodies + slice.readableBytes
            if bytesOutsideBodies > maxBytes + Self.sliceBytes {
                throw UploadError.invalidMultipart("A part's headers are longer than \(maxBytes) bytes.")
            }
        }
    }
}
