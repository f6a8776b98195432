import Foundation
import Testing

@testable import JobService

/// Reusing the last encoding of a status object must never answer an old status.
@Suite struct StatusJSONCacheTests {
    private func makeStatus(id: String = "a", message: String = "Starting") -> JobStatusResponse {
        JobStatusResponse(
            requestId: id, status: .processing, message: message, timestamp: Date(timeIntervalSince1970: 0),
            positionInQueue: nil, estimatedTime: nil, estimatedSeconds: 12, resultUrl: nil,
            createdAt: Date(timeIntervalSince1970: 0), startedAt: nil, finishedAt: nil, progress: nil,
            params: JobParameters(seed: 1), error: nil, attempts: 1, result: nil, segmentsReady: 0, playlistUrl: nil)
    }

    private func decoded(_ status: JobStatusResponse, cache: StatusJSONCache) throws -> [String: Any] {
        let json = try cache.json(for: status)
        return try #require(try JSONSerialization.jsonObject(with: Data(json.readableBytesView)) as? [String: Any])
    }

    @Test func anEqualStatusGetsTheSameJSONAsEncodingIt() throws {
        let cache = StatusJSONCache()
        let status = makeStatus()
        let first = try cache.json(for: status)
        #expect(try cache.json(for: status) == first)
        #expect(first == (try APIJSON.encode(status)))
    }

    @Test func aChangedStatusIsEncodedAgain() throws {
        let cache = StatusJSONCache()
        #expect(try decoded(makeStatus(message: "Starting"), cache: cache)["message"] as? String == "Starting")
        #expect(try decoded(makeStatus(message: "Clip 1 of 2"), cache: cache)["message"] as? String == "Clip 1 of 2")
        var later = makeStatus(message: "Clip 1 of 2")
        later.estimatedSeconds = 3
        #expect(try decoded(later, cache: cache)["estimated_seconds"] as? Double == 3)
    }

    @Test func jobsDoNotShareEntriesAndTheCacheStaysBounded() throws {
        let cache = StatusJSONCache(capacity: 2)
        for id in ["a", "b", "c", "a"] {
            #expect(try decoded(makeStatus(id: id), cache: cache)["request_id"] as? String == id)
        }
    }
}
