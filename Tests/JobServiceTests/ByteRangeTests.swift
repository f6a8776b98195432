import Testing

@testable import JobService

@Suite struct ByteRangeTests {
    @Test func aClosedRangeIsServedAsAsked() {
        #expect(ByteRange.resolve(header: "bytes=0-9", size: 1000) == .part(0...9))
    }

    @Test func anOpenRangeRunsToTheEnd() {
        #expect(ByteRange.resolve(header: "bytes=100-", size: 1000) == .part(100...999))
    }

    @Test func aSuffixRangeIsTheLastBytes() {
        #expect(ByteRange.resolve(header: "bytes=-100", size: 1000) == .part(900...999))
        #expect(ByteRange.resolve(header: "bytes=-5000", size: 1000) == .part(0...999))
    }

    @Test func anEndPastTheFileIsClamped() {
        #expect(ByteRange.resolve(header: "bytes=990-2000", size: 1000) == .part(990...999))
    }

    @Test func aStartPastTheFileIsUnsatisfiable() {
        #expect(ByteRange.resolve(header: "bytes=1000-", size: 1000) == .unsatisfiable)
        #expect(ByteRange.resolve(header: "bytes=-0", size: 1000) == .unsatisfiable)
    }

    @Test func malformedOrMultipleRangesAreIgnored() {
        #expect(ByteRange.resolve(header: nil, size: 1000) == .whole)
        #expect(ByteRange.resolve(header: "items=0-9", size: 1000) == .whole)
        #expect(ByteRange.resolve(header: "bytes=9-0", size: 1000) == .whole)
        #expect(ByteRange.resolve(header: "bytes=0-1,5-6", size: 1000) == .whole)
        #expect(ByteRange.resolve(header: "bytes=abc", size: 1000) == .whole)
    }
}
