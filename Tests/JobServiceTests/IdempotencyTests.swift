import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import JobService

/// `Idempotency-Key` on `POST /api/generate`: a retry gets the first answer and creates no second job, even when it
/// arrives while the first is still being handled; the same key with different content is 422
/// `idempotency_key_reused`; keys of different owners never meet.
@Suite struct IdempotencyTests {
    private func idempotencyKey(_ key: String) -> HTTPFields { [HTTPField.Name("Idempotency-Key")!: key] }

    private func queuedCount(_ service: InfiniteTalkService) async throws -> Int {
        try await service.repository.activeJobs().queued.count
    }

    @Test func aRetryGetsTheFirstAnswerAndMakesNoSecondJob() async throws {
        try await AuthTestApp.run { service, client, keys in
            let form = try MultipartForm.valid(fields: ["seed": "7"])
            let first = try await AuthTestApp.submitResponse(
                client, as: keys.alice, form: form, headers: idempotencyKey("order-1"))
            #expect(first.status == .ok)
            #expect(first.headers[HTTPField.Name("Idempotent-Replayed")!] == nil)
            // The same content sent again, in another multipart body
            let retry = try await AuthTestApp.submitResponse(
                client, as: keys.alice, form: try MultipartForm.valid(fields: ["seed": "7"]),
                headers: idempotencyKey("order-1"))
            #expect(retry.status == .ok)
            #expect(retry.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            #expect(String(buffer: retry.body) == String(buffer: first.body))
            #expect(try await queuedCount(service) == 1)
        }
    }

    @Test func theSameKeyWithOtherContentIsRefused() async throws {
        try await AuthTestApp.run { service, client, keys in
            _ = try await AuthTestApp.submitResponse(
                client, as: keys.alice, form: try MultipartForm.valid(fields: ["seed": "1"]),
                headers: idempotencyKey("k"))
            let other = try await AuthTestApp.submitResponse(
                client, as: keys.alice, form: try MultipartForm.valid(fields: ["seed": "2"]),
                headers: idempotencyKey("k"))
            #expect(other.status == .unprocessableContent)
            #expect(other.json["error"]?["code"] == .string("idempotency_key_reused"))
            #expect(try await queuedCount(service) == 1)
        }
    }

    @Test func twoOwnersMayUseTheSameKey() async throws {
        try await AuthTestApp.run { service, client, keys in
            for token in [keys.alice, keys.bob] {
                let response = try await AuthTestApp.submitResponse(
                    client, as: token, headers: idempotencyKey("shared"))
                #expect(response.headers[HTTPField.Name("Idempotent-Replayed")!] == nil)
            }
            #expect(try await queuedCount(service) == 2)
        }
    }

    @Test func retriesSentAtOnceMakeOneJob() async throws {
        try await AuthTestApp.run { service, client, keys in
            let bodies = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let response = try await AuthTestApp.submitResponse(
                            client, as: keys.alice, headers: idempotencyKey("burst"))
                        return String(buffer: response.body)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(bodies).count == 1)
            #expect(try await queuedCount(service) == 1)
        }
    }

    @Test func aMalformedKeyIsABadRequest() async throws {
        try await AuthTestApp.run { _, client, keys in
            for key in [String(repeating: "k", count: 256), "with space"] {
                let response = try await AuthTestApp.submitResponse(
                    client, as: keys.alice, headers: idempotencyKey(key))
                #expect(response.status == .badRequest)
                #expect(response.json["error"]?["code"] == .string("invalid_idempotency_key"))
            }
        }
    }

    @Test func aKeyIsForgottenAfterTheWindow() async throws {
        let database = try SQLiteDatabase.inMemory()
        let now = Mutex(Date(timeIntervalSince1970: 1_000_000))
        let submits = IdempotentSubmits(
            store: database.idempotency, window: .seconds(3600), now: { now.withLock { $0 } })
        let jobs = Mutex(0)
        let submit = { () async throws -> (jobID: String, json: String) in
            let count = jobs.withLock { count -> Int in
                count += 1
                return count
            }
            return ("job-\(count)", #"{"n":\#(count)}"#)
        }
        let first = try await submits.answer(owner: nil, key: "k", fingerprint: "f", submit: submit)
        now.withLock { $0 += 3599 }
        let replay = try await submits.answer(owner: nil, key: "k", fingerprint: "f", submit: submit)
        #expect(replay.replayed && replay.json == first.json)
        now.withLock { $0 += 2 }
        let fresh = try await submits.answer(owner: nil, key: "k", fingerprint: "other", submit: submit)
        #expect(!fresh.replayed && fresh.json == #"{"n":2}"#)
    }
}
