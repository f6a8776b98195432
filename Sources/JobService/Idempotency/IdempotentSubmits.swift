import Foundation
import HTTPTypes
import Synchronization

/// `Idempotency-Key` on `POST /api/generate`: the same key from the same owner within the window (24 h by default)
/// answers what the first submit was answered and creates no second job; the same key with a different body is
/// 422 `idempotency_key_reused`.
///
/// Submits with one key run one at a time (a retry sent while the first is still uploading waits for it, then gets
/// its answer). A submit that failed leaves no record: a retry runs anew. The record is written right after the job
/// is queued; a crash between the two (a few milliseconds) would let a retry queue the job again.
final class IdempotentSubmits: Sendable {
    /// The first submit's answer, or a replay of it.
    struct Answer: Sendable {
        var json: String
        var replayed: Bool
    }

    private let store: any IdempotencyStore
    private let window: TimeInterval
    private let now: @Sendable () -> Date
    private let turns = KeyedTurns()

    init(store: any IdempotencyStore, window: Duration, now: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.window = TimeInterval(window.components.seconds)
        self.now = now
    }

    static let headerName = HTTPField.Name("Idempotency-Key")!
    static let replayedHeaderName = HTTPField.Name("Idempotent-Replayed")!

    /// Whether `owner` used `key` within the window (a retry: it will be answered from the record).
    func knows(owner: String?, key: String) async throws -> Bool {
        try await store.record(owner: owner ?? "", key: key, notBefore: now().addingTimeInterval(-window)) != nil
    }

    /// Checks a client's key: 1 to 255 visible ASCII characters.
    static func validate(_ key: String) throws -> String {
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw APIError(
                .badRequest, code: "invalid_idempotency_key",
                message: "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice).")
        }
        return key
    }

    /// Answers a submit with `key` whose content has `fingerprint`: the stored answer when the key was used before,
    /// else what `submit` answers (then stored).
    func answer(
        owner: String?, key: String, fingerprint: String, submit: () async throws -> (jobID: String, json: String)
    ) async throws -> Answer {
        let owner = owner ?? ""
        return try await turns.inTurn(of: owner + "\n" + key) {
            let started = now()
            if let record = try await store.record(
                owner: owner, key: key, notBefore: started.addingTimeInterval(-window))
            {
                guard record.fingerprint == fingerprint else {
                    throw APIError(
                        .unprocessableContent, code: "idempotency_key_reused",
                        message:
                            "This Idempotency-Key was used for a different request (job \(record.jobId)); use a new key for a new request."
                    )
                }
                return Answer(json: record.response, replayed: true)
            }
            let (jobID, json) = try await submit()
            try await store.save(
                IdempotencyRecord(
                    owner: owner, key: key, fingerprint: fingerprint, jobId: jobID, response: json, createdAt: started),
                forgetBefore: started.addingTimeInterval(-window))
            return Answer(json: json, replayed: false)
        }
    }
}

/// Runs work for one key at a time (different keys run at once), in arrival order.
final class KeyedTurns: Sendable {
    private let waiting = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    func inTurn<T>(of key: String, _ work: () async throws -> T) async throws -> T {
        await take(key)
        defer { pass(key) }
        return try await work()
    }

    private func take(_ key: String) async {
        await withCheckedContinuation { continuation in
            let mine = waiting.withLock { waiting -> Bool in
                if let queue = waiting[key] {
                    waiting[key] = queue + [continuation]
                    return false
                }
                waiting[key] = []
                return true
            }
            if mine { continuation.resume() }
        }
    }

    private func pass(_ key: String) {
        let next = waiting.withLock { waiting -> CheckedContinuation<Void, Never>? in
            guard var queue = waiting[key], !queue.isEmpty else {
                waiting[key] = nil
                return nil
            }
            let first = queue.removeFirst()
            waiting[key] = queue
            return first
        }
        next?.resume()
    }
}
