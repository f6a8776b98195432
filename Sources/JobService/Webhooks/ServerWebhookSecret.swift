import Foundation

/// The secret that signs webhooks of jobs submitted without a key (auth off): kept in `<data-dir>/webhook_secret`
/// (mode 0600), made on first use; `infinitetalk webhook-secret` prints it. With auth on each key signs with its own.
public enum ServerWebhookSecret {
    public static func load(dataDirectory: String) throws -> String {
        let path = (dataDirectory as NSString).appendingPathComponent("webhook_secret")
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !secret.isEmpty { return secret }
        }
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let secret = WebhookSignature.newSecret()
        // Written aside and renamed: a server and a command starting at once never read half a secret.
        let temporary = path + ".\(ProcessInfo.processInfo.processIdentifier).tmp"
        FileManager.default.createFile(
            atPath: temporary, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
        if link(temporary, path) != 0 {
            // Another process made it first: use theirs.
            try? FileManager.default.removeItem(atPath: temporary)
            return try load(dataDirectory: dataDirectory)
        }
        try? FileManager.default.removeItem(atPath: temporary)
        return secret
    }
}
