import Testing

@testable import Uploads

@Suite("Image formats are sniffed from the bytes")
struct ImageFormatTests {
    @Test(
        "ffmpeg's JPEG, PNG and WebP (lossy, lossless, extended) are recognised",
        arguments: [
            ("picture.jpg", [], ImageFormat.jpeg),
            ("picture.png", [], .png),
            ("lossy.webp", [], .webp),
            ("lossless.webp", ["-lossless", "1"], .webp),
            ("alpha.webp", ["-pix_fmt", "yuva420p"], .webp),
        ] as [(String, [String], ImageFormat)])
    func encodedPictures(name: String, arguments: [String], expected: ImageFormat) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try await TestMedia.makePicture(
            width: 80, height: 60, name: name, extraArguments: arguments,
            in: directory)

        #expect(ImageFormat.sniff(try fileBytes(path)) == expected)
    }

    @Test("the shared portrait is a PNG")
    func sharedPortrait() throws {
        #expect(ImageFormat.sniff(try fileBytes(TestMedia.sharedPortraitPath)) == .png)
    }

    @Test(
        "other bytes are not an image",
        arguments: [
            ("GIF", Array("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8)),
            ("WAV", Array("RIFF\u{24}\u{0}\u{0}\u{0}WAVEfmt ".utf8)),
            ("text", Array("<html><body>".utf8)),
            ("short JPEG prefix", [0xFF, 0xD8]),
            ("nothing", []),
        ] as [(String, [UInt8])])
    func notImages(_ description: String, bytes: [UInt8]) {
        #expect(ImageFormat.sniff(bytes) == nil)
    }
}
