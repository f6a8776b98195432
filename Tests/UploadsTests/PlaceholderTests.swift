import Testing
@testable import Uploads

@Suite struct UploadsPlaceholderTests {
    @Test func moduleLoads() { #expect(Uploads.self == Uploads.self) }
}
