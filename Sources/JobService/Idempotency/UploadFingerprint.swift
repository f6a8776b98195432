import Crypto
import Foundation

/// What identifies a submit's content whatever its multipart encoding (boundaries and part order differ between two
/// sends of the same request): a SHA-256 over its text fields and the SHA-256 of each file.
enum UploadFingerprint {
    static func of(fields: [String: String], files: [String: String]) throws -> String {
        var lines = fields.map { "field \($0.key)=\($0.value)" }
        for (name, path) in files { lines.append("file \(name)=\(try sha256(ofFileAt: path))") }
        return hex(SHA256.hash(data: Data(lines.sorted().joined(separator: "\n").utf8)))
    }

    private static func sha256(ofFileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CocoaError(.fileReadNoSuchFile) }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hex(hasher.finalize())
    }

    private static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
