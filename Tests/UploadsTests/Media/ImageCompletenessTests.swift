import Foundation
import Testing

@testable import Uploads

@Suite("UploadValidator refuses images cut short, even when their headers are intact")
struct ImageCompletenessTests {
    let validator = UploadValidator()

    @Test(
        "whole pictures from an encoder are accepted",
        arguments: [
            ("picture.jpg", []), ("picture.png", []), ("lossy.webp", []), ("lossless.webp", ["-lossless", "1"]),
        ] as [(String, [String])])
    func wholePictures(name: String, extraArguments: [String]) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try await TestMedia.makePicture(
            width: 320, height: 240, name: name, extraArguments: extraArguments, in: directory)

        #expect(try validator.validateImage(at: path).width == 320)
    }

    @Test("a real JPEG cut anywhere in its scan data is 422 invalid_image", arguments: [0.6, 0.9, 0.999])
    func truncatedJPEG(keptFraction: Double) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let picture = try await TestMedia.makePicture(
            width: 320, height: 240, name: "noisy.jpg", extraArguments: ["-vf", "noise=alls=100:allf=t"],
            in: directory)
        let whole = try fileBytes(picture)
        let path = try directory.write(Array(whole.prefix(Int(Double(whole.count) * keptFraction))), to: "image")

        let error = #expect(throws: UploadError.self) { try validator.validateImage(at: path) }

        #expect(error?.status == 422)
        #expect(error?.code == "invalid_image")
        #expect(error?.field == "image")
    }

    @Test("a real PNG cut short with an IEND chunk glued on is 422 invalid_image")
    func truncatedPNGWithEnd() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let whole = try fileBytes(TestMedia.sharedPortraitPath)
        let forged = Array(whole.prefix(whole.count / 2)) + HandBuiltImages.pngChunk("IEND", [])
        let path = try directory.write(forged, to: "image")

        let error = #expect(throws: UploadError.self) { try validator.validateImage(at: path) }

        #expect(error?.code == "invalid_image")
    }

    @Test("a PNG chunk whose bytes do not match its CRC is 422 invalid_image")
    func corruptPNGChunk() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let png = HandBuiltImages.png(width: 100, height: 100)
        let path = try directory.write(png.replacing(at: 41, with: png[41] ^ 0xFF), to: "image") // inside IDAT

        let error = #expect(throws: UploadError.self) { try validator.validateImage(at: path) }

        #expect(error?.code == "invalid_image")
        #expect(error?.message.contains("CRC") == true)
    }

    @Test("a PNG without image data, or with bytes after IEND, is 422 invalid_image")
    func pngStructure() throws {
        let noData =
            Array(HandBuiltImages.png(width: 100, height: 100).prefix(33)) + HandBuiltImages.pngChunk("IEND", [])
        let trailing = HandBuiltImages.png(width: 100, height: 100) + [0]

        for bytes in [noData, trailing] {
            #expect(throws: UploadError.self) { try ImageCompleteness.check(.png, MemoryBytes(bytes)) }
        }
    }

    @Test("a progressive JPEG's scans, stuffed bytes, restart markers and fill bytes are walked to EOI")
    func jpegScansAreWalked() throws {
        let scanData: [UInt8] = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xD1, 0x78]
        let bytes =
            [0xFF, 0xD8] + HandBuiltImages.jfif + HandBuiltImages.startOfFrame(0xC2, width: 64, height: 64)
            + HandBuiltImages.huffmanTable + HandBuiltImages.startOfScan + scanData
            + HandBuiltImages.huffmanTable + HandBuiltImages.startOfScan + scanData + [0xFF, 0xFF, 0xD9]

        try ImageCompleteness.check(.jpeg, MemoryBytes(bytes))
        #expect(throws: UploadError.self) { try ImageCompleteness.check(.jpeg, MemoryBytes(Array(bytes.dropLast(2)))) }
        #expect(throws: UploadError.self) {
            // An EOI with no scan before it: headers only.
            try ImageCompleteness.check(
                .jpeg, MemoryBytes(HandBuiltImages.jpeg([HandBuiltImages.startOfFrame(width: 64, height: 64)])))
        }
    }
}
