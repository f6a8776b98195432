import ArgumentParser
import JobService

/// `infinitetalk webhook-secret`: prints the secret that signs the webhooks of jobs submitted without a key (auth
/// off), making it on first use. With auth on each key signs with its own (`keys create` prints it).
struct WebhookSecret: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook-secret",
        abstract: "Print the secret that signs webhooks when auth is off (Standard Webhooks, whsec_…).")
    @OptionGroup var location: Keys.Location

    func run() async throws {
        print(try ServerWebhookSecret.load(dataDirectory: location.configuration().dataDirectory))
    }
}
