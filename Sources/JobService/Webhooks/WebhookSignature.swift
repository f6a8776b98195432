import Crypto
import Foundation

/// Webhook signatures per the Standard Webhooks spec (standardwebhooks.com): `webhook-signature` is
/// `v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`, keyed with the secret's bytes (the
/// base64 after `whsec_`).
public enum WebhookSignature {
    public static func sign(id: String, timestamp: Int, body: String, secret: String) throws -> String {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let key = Data(base64Encoded: encoded), !key.isEmpty else { throw InvalidSecret() }
        let code = HMAC<SHA256>.authenticationCode(
            for: Data("\(id).\(timestamp).\(body)".utf8), using: SymmetricKey(data: key))
        return "v1," + Data(code).base64EncodedString()
    }

    /// A new secret: `whsec_` + base64 of 32 random bytes.
    public static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return "whsec_" + Data(bytes).base64EncodedString()
    }

    struct InvalidSecret: Error {}
}
