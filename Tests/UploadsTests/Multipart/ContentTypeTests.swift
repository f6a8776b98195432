import Testing

@testable import Uploads

@Suite("A request's Content-Type gives the multipart boundary")
struct ContentTypeTests {
    @Test(
        "the boundary is read plain, quoted, and whatever the type's case or parameter order",
        arguments: [
            "multipart/form-data; boundary=abc123",
            "multipart/form-data; boundary=\"abc123\"",
            "Multipart/Form-Data;boundary=abc123",
            "multipart/form-data; charset=utf-8; boundary=abc123",
        ])
    func boundaryIsExtracted(contentType: String) throws {
        #expect(try MultipartReceiver.boundary(fromContentType: contentType) == "abc123")
    }

    @Test("a browser's boundary with dashes survives intact")
    func browserBoundary() throws {
        let contentType = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"
        #expect(try MultipartReceiver.boundary(fromContentType: contentType) == "----WebKitFormBoundary7MA4YWxkTrZu0gW")
    }

    @Test(
        "anything but multipart/form-data is 415 unsupported_content_type",
        arguments: [nil, "application/json", "multipart/mixed; boundary=abc", "text/plain", ""] as [String?])
    func otherTypesAreUnsupported(contentType: String?) {
        let error = #expect(throws: UploadError.self) { try MultipartReceiver.boundary(fromContentType: contentType) }
        #expect(error?.status == 415)
        #expect(error?.code == "unsupported_content_type")
    }

    @Test(
        "a missing, empty, overlong or ill-formed boundary is 400 invalid_multipart",
        arguments: [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=" + String(repeating: "a", count: 71),
            "multipart/form-data; boundary=\"abc\r\n\"",
        ])
    func badBoundaries(contentType: String) {
        let error = #expect(throws: UploadError.self) { try MultipartReceiver.boundary(fromContentType: contentType) }
        #expect(error?.status == 400)
        #expect(error?.code == "invalid_multipart")
    }

    @Test("a receiver made from a Content-Type uses its boundary")
    func receiverFromContentType() throws {
        let receiver = try MultipartReceiver(contentType: "multipart/form-data; boundary=xyz", directory: "/tmp")
        #expect(receiver.boundary == "xyz")
    }
}
