import Foundation
import Testing

@testable import Uploads

@Suite("UploadValidator accepts an image only within its limits")
struct ImageValidationTests {
    let validator = UploadValidator()

    @Test("the shared portrait is accepted as a PNG of ffprobe's size")
    func sharedPortrait() async throws {
        let expected = try await TestMedia.ffprobeDimensions(of: TestMedia.sharedPortraitPath)

        let info = try validator.validateImage(at: TestMedia.sharedPortraitPath)

        #expect(info == ImageInfo(format: .png, width: expected.width, height: expected.height))
    }

    @Test(
        "a 20000 x 20000 bomb is refused from its header alone",
        arguments: [
            ("bomb.png", HandBuiltImages.png(width: 20_000, height: 20_000)),
            (
                "bomb.jpg",
                HandBuiltImages.jpeg([
                    HandBuiltImages.jfif,
                    HandBuiltImages.startOfFrame(width: 20_000, height: 20_000),
                ])
            ),
            ("bomb.webp", HandBuiltImages.webpExtended(width: 20_000, height: 20_000)),
        ] as [(String, [UInt8])])
    func decompressionBombs(name: String, bytes: [UInt8]) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write(bytes, to: name)

        let error = #expect(throws: UploadError.self) { try validator.validateImage(at: path) }

        // Refused for its declared size: the file holds only a header, so a decoder would have failed otherwise.
        #expect(error?.code == "image_dimensions_too_large")
        #expect(error?.field == "image")
    }

    @Test(
        "one side over the limit is too large; one side under the minimum is too small",
        arguments: [
            (4097, 100, "image_dimensions_too_large"),
            (100, 4097, "image_dimensions_too_large"),
            (63, 500, "image_dimensions_too_small"),
            (500, 63, "image_dimensions_too_small"),
        ])
    func pixelLimits(width: Int, height: Int, code: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write(HandBuiltImages.png(width: width, height: height), to: "image")

        let error = #expect(throws: UploadError.self) { try validator.validateImage(at: path) }

        #expect(error?.code == code)
        #expect(error?.status == 422)
    }

    @Test("the limits themselves are accepted (4096 x 4096 and 64 x 64)", arguments: [(4096, 4096), (64, 64)])
    func limitsAreInclusive(width: Int, height: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write(HandBuiltImages.png(width: width, height: height), to: "image")

        #expect(try validator.validateImage(at: path) == ImageInfo(format: .png, width: width, height: height))
    }

    @Test("limits are configurable")
    func configurableLimits() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write(HandBuiltImages.png(width: 800, height: 600), to: "image")
        let strict = UploadValidator(limits: UploadLimits(maxImageWidth: 640, maxImageHeight: 640))

        #expect(throws: UploadError.self) { try strict.validateImage(at: path) }
        #expect(try validator.validateImage(at: path).width == 800)
    }

    @Test("a GIF is 415 unsupported_image_format")
    func unsupportedFormat() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try await TestMedia.makePicture(width: 80, height: 80, name: "picture.gif", in: directory)

        let error = #expect(throws: UploadError.self) { try validator.validateImage(at: path) }

        #expect(error?.status == 415)
        #expect(error?.code == "unsupported_image_format")
    }

    @Test("a truncated real PNG is invalid_image, with the field named")
    func truncatedPNG() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let whole = try fileBytes(TestMedia.sharedPortraitPath)
        let path = try directory.write(Array(whole.prefix(whole.count / 2)), to: "image")

        let error = #expect(throws: UploadError.self) { try validator.validateImage(at: path, field: "portrait") }

        #expect(error?.code == "invalid_image")
        #expect(error?.field == "portrait")
    }

    @Test("an empty or absent file is missing_image; an oversized one is image_too_large")
    func fileSizes() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let empty = try directory.write([], to: "empty")
        let big = try directory.write(
            HandBuiltImages.png(width: 100, height: 100) + Array(repeating: 0, count: 2000),
            to: "big")
        let small = UploadValidator(limits: UploadLimits(maxImageBytes: 1000))

        #expect(throws: UploadError.missingFile(.image, field: "image")) { try validator.validateImage(at: empty) }
        #expect(throws: UploadError.missingFile(.image, field: "image")) {
            try validator.validateImage(at: directory.path + "/absent")
        }
        #expect(throws: UploadError.fileTooLarge(.image, field: "image", limit: 1000)) {
            try small.validateImage(at: big)
        }
    }
}
