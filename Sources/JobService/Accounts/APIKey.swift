import Crypto
import Foundation
import GRDB

/// What a key may do: `user` keys see and touch their own jobs; `admin` keys see every job.
public enum APIKeyRole: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case user
    case admin
}

/// One API key. Only a hash of its token is stored: the token itself is shown once, when the key is created.
///
/// Tokens are 256 random bits, so a plain SHA-256 is the right hash (a slow password hash protects guessable secrets,
/// and would cost every request a few milliseconds for nothing).
public struct APIKey: Codable, Sendable, Equatable, Identifiable {
    /// Public id (`key_…`), stored as `Job.owner` of the jobs the key submits.
    public var id: String
    public var name: String
    /// The token's first characters (`itk_AbCd1234`), so people can tell their keys apart in lists.
    public var prefix: String
    /// Lowercase hex SHA-256 of the whole token.
    public var tokenHash: String
    public var role: APIKeyRole
    /// Submits per minute (a token bucket of this size); `nil` means the server's default, 0 no limit.
    public var ratePerMinute: Double?
    /// Most jobs this key may have queued at once; `nil` means the server's default.
    public var maxQueued: Int?
    /// Signs this key's webhooks (Standard Webhooks: `whsec_` + base64 of 32 random bytes).
    public var webhookSecret: String
    /// Where this key's jobs report when a submit names no `webhook_url`.
    public var webhookURL: String?
    public var createdAt: Date
    /// Set by `keys revoke`: from then on the token is refused.
    public var revokedAt: Date?

    public var isAdmin: Bool { role == .admin }
    public var isRevoked: Bool { revokedAt != nil }

    /// Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
    public static let tokenPrefix = "itk_"

    /// A new key and its token (the only time the token exists outside the caller's hands).
    public static func generate(
        name: String, role: APIKeyRole = .user, ratePerMinute: Double? = nil, maxQueued: Int? = nil,
        webhookURL: String? = nil, now: Date = Date()
    ) -> (key: APIKey, token: String) {
        let token = tokenPrefix + base62(randomBytes(32))
        let key = APIKey(
            id: "key_" + base62(randomBytes(9)), name: name, prefix: String(token.prefix(12)),
            tokenHash: hash(token: token), role: role, ratePerMinute: ratePerMinute, maxQueued: maxQueued,
            webhookSecret: "whsec_" + Data(randomBytes(32)).base64EncodedString(), webhookURL: webhookURL,
            createdAt: now, revokedAt: nil)
        return (key, token)
    }

    /// The stored form of a token.
    public static func hash(token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    private static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// Letters and digits only: a token survives shells, URLs, headers and double-click selection unquoted.
    private static func base62(_ bytes: [UInt8]) -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var number = bytes
        var digits: [Character] = []
        while number.contains(where: { $0 != 0 }) {
            var remainder = 0
            for index in number.indices {
                let value = remainder * 256 + Int(number[index])
                number[index] = UInt8(value / 62)
                remainder = value % 62
            }
            digits.append(alphabet[remainder])
        }
        return String(digits.reversed())
    }
}

extension APIKey: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "api_key"

    public enum Columns {
        static let id = Column(CodingKeys.id)
        static let tokenHash = Column(CodingKeys.tokenHash)
        static let createdAt = Column(CodingKeys.createdAt)
        static let revokedAt = Column(CodingKeys.revokedAt)
    }
}
