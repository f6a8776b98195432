import ArgumentParser
import Foundation
import JobService

/// `infinitetalk keys create|list|revoke`: API keys in the service's database (the same `--data-dir` as `serve`;
/// works while the server runs).
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke API keys (used when the server runs with --auth on).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Location: ParsableArguments {
        @Option(help: "The data folder of the server (as `serve --data-dir`; default: its default).")
        var dataDir: String?

        func configuration() throws -> ServiceConfiguration {
            var options = SettingsOptions()
            if let dataDir { options.settings = ["--data-dir", dataDir] }
            return try options.resolve()
        }

        func open() throws -> GRDBKeyRepository {
            let configuration = try configuration()
            try FileManager.default.createDirectory(
                atPath: configuration.dataDirectory, withIntermediateDirectories: true)
            return try GRDBKeyRepository.open(path: configuration.databasePath)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key and print it once (only its hash is stored).")
        @Option(help: "Who or what the key is for.") var name: String
        @Flag(help: "The key sees and manages every job.") var admin = false
        @Option(help: "Submits for this key: 10, 10/min, 1/s, 600/h, or off (default: the server's --key-rate).")
        var rate: String?
        @Option(help: "Most queued jobs for this key (default: the server's --key-max-queued).") var maxQueued: Int?
        @Option(help: "Default webhook URL of this key's jobs.") var webhookUrl: String?
        @Flag(help: "Print one JSON object.") var json = false
        @OptionGroup var location: Location

        func run() async throws {
            guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--name is empty.") }
            if let maxQueued, maxQueued < 1 { throw ValidationError("--max-queued must be at least 1.") }
            let ratePerMinute: Double?
            do {
                // `off` is stored as 0: no limit for this key, whatever the server's default.
                ratePerMinute = try rate.map { try parseRate($0) ?? 0 }
            } catch {
                throw ValidationError("--rate \(rate ?? ""): \(error)")
            }
            let keys = try location.open()
            let (key, token) = APIKey.generate(
                name: name, role: admin ? .admin : .user, ratePerMinute: ratePerMinute, maxQueued: maxQueued,
                webhookURL: webhookUrl)
            try await keys.insert(key)
            if json {
                var object = KeyJSON(key)
                object.key = token
                object.webhookSecret = key.webhookSecret
                print(try KeyJSON.text(object))
            } else {
                print("Created key \(key.id) (\(key.name), \(key.role.rawValue)). Keep it now; it is not shown again:")
                print(token)
                print("Webhook signing secret: \(key.webhookSecret)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the keys (never their tokens).")
        @Flag(help: "Print a JSON array.") var json = false
        @OptionGroup var location: Location

        func run() async throws {
            let all = try await location.open().list()
            if json {
                print(try KeyJSON.text(all.map(KeyJSON.init)))
                return
            }
            for key in all {
                let state = key.revokedAt.map { "revoked \(ISO8601DateFormatter().string(from: $0))" } ?? "active"
                print("\(key.id)  \(key.prefix)…  \(key.role.rawValue)  \(state)  \(key.name)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key: refused from the next request on.")
        @Argument(help: "The key's id (key_…) or its prefix (itk_…).") var key: String
        @OptionGroup var location: Location

        func run() async throws {
            let keys = try location.open()
            let matches = try await keys.list().filter { $0.id == key || (key.count >= 8 && $0.prefix.hasPrefix(key)) }
            guard matches.count == 1, let match = matches.first else {
                throw ValidationError(matches.isEmpty ? "No key \(key)." : "\(key) matches several keys; give the id.")
            }
            _ = try await keys.revoke(id: match.id, now: Date())
            print("Revoked \(match.id) (\(match.name)).")
        }
    }
}

/// A key as `keys list --json` and `keys create --json` print it (the token and secret only on create).
struct KeyJSON: Encodable {
    var id, name, prefix, role: String
    var ratePerMinute: Double?
    var maxQueued: Int?
    var webhookUrl: String?
    var createdAt: Date
    var revokedAt: Date?
    var key: String?
    var webhookSecret: String?

    init(_ key: APIKey) {
        (id, name, prefix, role) = (key.id, key.name, key.prefix, key.role.rawValue)
        (ratePerMinute, maxQueued, webhookUrl) = (key.ratePerMinute, key.maxQueued, key.webhookURL)
        (createdAt, revokedAt) = (key.createdAt, key.revokedAt)
    }

    static func text(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
