import Testing

@testable import Uploads

@Suite("Image dimensions come from the header, never from decoding")
struct ImageHeaderTests {
    private func header(_ bytes: [UInt8]) throws -> ImageHeader {
        let format = try #require(ImageFormat.sniff(bytes))
        return try ImageHeader.read(format, from: MemoryBytes(bytes))
    }

    @Test(
        "ffmpeg-encoded pictures report the size they were made with",
        arguments: [
            ("picture.jpg", []), ("picture.png", []), ("lossy.webp", []), ("lossless.webp", ["-lossless", "1"]),
            ("alpha.webp", ["-pix_fmt", "yuva420p"]),
        ] as [(String, [String])])
    func encodedPictures(name: String, arguments: [String]) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try await TestMedia.makePicture(
            width: 98, height: 66, name: name, extraArguments: arguments,
            in: directory)

        #expect(try header(fileBytes(path)) == ImageHeader(width: 98, height: 66))
    }

    @Test("the shared portrait's header agrees with ffprobe")
    func sharedPortrait() async throws {
        let expected = try await TestMedia.ffprobeDimensions(of: TestMedia.sharedPortraitPath)
        let source = try FileBytes(path: TestMedia.sharedPortraitPath)

        let header = try ImageHeader.read(.png, from: source)

        #expect(header == ImageHeader(width: expected.width, height: expected.height))
    }

    // MARK: - JPEG segment walking

    @Test("a JPEG's SOF is found after large APP segments, fill bytes and restart markers")
    func jpegSegmentsAreSkipped() throws {
        let exif = HandBuiltImages.segment(0xE1, Array(repeating: 0xFF, count: 60_000)) // 0xFF bytes inside data
        let comment = HandBuiltImages.segment(0xFE, Array("a comment with \u{FF} bytes".utf8))
        let bytes = HandBuiltImages.jpeg([
            HandBuiltImages.jfif, exif, comment, [0xFF, 0xFF, 0xFF], // fill bytes before the next marker
            HandBuiltImages.startOfFrame(width: 300, height: 200), HandBuiltImages.startOfScan,
        ])

        #expect(try header(bytes) == ImageHeader(width: 300, height: 200))
    }

    @Test(
        "progressive and other SOFn markers carry dimensions; DHT does not",
        arguments: [0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCF] as [UInt8])
    func startOfFrameKinds(marker: UInt8) throws {
        let huffman = HandBuiltImages.segment(0xC4, Array(repeating: 0, count: 20))
        let bytes = HandBuiltImages.jpeg([huffman, HandBuiltImages.startOfFrame(marker, width: 640, height: 480)])

        #expect(try header(bytes) == ImageHeader(width: 640, height: 480))
    }

    // MARK: - Corrupt and truncated headers

    @Test(
        "corrupt or truncated headers are 422 invalid_image",
        arguments: [
            ("PNG cut inside IHDR", Array(HandBuiltImages.png(width: 100, height: 100).prefix(20))),
            ("PNG without IEND (cut short)", HandBuiltImages.png(width: 100, height: 100, withEnd: false)),
            (
                "PNG whose first chunk is not IHDR",
                HandBuiltImages.png(width: 100, height: 100).replacing(at: 12, with: 0x58)
            ),
            ("PNG of zero width", HandBuiltImages.png(width: 0, height: 100)),
            ("JPEG with only SOI", [0xFF, 0xD8, 0xFF]),
            (
                "JPEG cut inside an APP segment",
                Array(
                    HandBuiltImages.jpeg([HandBuiltImages.segment(0xE1, Array(repeating: 1, count: 500))]).prefix(100))
            ),
            (
                "JPEG cut inside the SOF",
                Array(
                    HandBuiltImages.jpeg([HandBuiltImages.startOfFrame(width: 9, height: 9)])
                        .prefix(8))
            ),
            ("JPEG scan before any frame", HandBuiltImages.jpeg([HandBuiltImages.jfif, HandBuiltImages.startOfScan])),
            ("JPEG with junk where a marker should be", [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0x12, 0x34]),
            ("JPEG with a segment length below 2", [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0x00]),
            ("JPEG with zero height (DNL)", HandBuiltImages.jpeg([HandBuiltImages.startOfFrame(width: 64, height: 0)])),
            (
                "WebP shorter than its RIFF size",
                HandBuiltImages.webpExtended(width: 100, height: 100).replacing(at: 4, with: 0xFF)
            ),
            (
                "WebP with an unknown first chunk",
                Array("RIFF".utf8) + [22, 0, 0, 0] + Array("WEBPXXXX".utf8) + [10, 0, 0, 0]
                    + Array(repeating: 0, count: 10)
            ),
            (
                "WebP cut inside the chunk header",
                Array(HandBuiltImages.webpExtended(width: 100, height: 100).prefix(18))
            ),
        ] as [(String, [UInt8])])
    func corruptHeaders(_ description: String, bytes: [UInt8]) throws {
        let error = #expect(throws: UploadError.self) { try header(bytes) }
        #expect(error?.code == "invalid_image")
        #expect(error?.status == 422)
    }

    @Test("a real JPEG cut anywhere before its frame header is invalid_image")
    func realJPEGTruncated() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let whole = try fileBytes(try await TestMedia.makePicture(width: 80, height: 60, name: "p.jpg", in: directory))
        let frameOffset = try #require(whole.indices.dropLast().first { whole[$0] == 0xFF && whole[$0 + 1] == 0xC0 })

        for length in stride(from: 3, through: frameOffset + 8, by: 5) {
            #expect(throws: UploadError.self, "cut at \(length)") { try header(Array(whole.prefix(length))) }
        }
        #expect(try header(Array(whole.prefix(frameOffset + 9))) == ImageHeader(width: 80, height: 60))
    }
}
