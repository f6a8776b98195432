import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import JobService

/// Webhooks: Standard Webhooks signatures, the SSRF guard on URLs, and the outbox that keeps each job event once.
/// (Delivery, retries and kill -9 run against a real receiver in web/tests/test_webhooks.py.)
@Suite struct WebhookTests {
    @Test func theSignatureMatchesTheStandardWebhooksSpecsExample() throws {
        let signature = try WebhookSignature.sign(
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: #"{"test": 2432232314}"#,
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func newSecretsAreStandardWebhooksSecrets() throws {
        let secret = WebhookSignature.newSecret()
        #expect(secret.hasPrefix("whsec_"))
        #expect(Data(base64Encoded: String(secret.dropFirst(6)))?.count == 32)
    }

    @Test(arguments: [
        "http://127.0.0.1/hook", "http://localhost:9000/", "http://10.1.2.3/", "http://169.254.169.254/latest",
        "http://172.20.0.1/", "http://192.168.1.1/", "http://100.64.0.1/", "http://0.0.0.0/", "http://[::1]/",
        "http://[fd00::1]/", "http://[fe80::1]/", "http://[::ffff:127.0.0.1]/", "http://app.localhost/",
    ])
    func urlsOfTheServersOwnNetworkAreRefused(url: String) throws {
        let refusal = WebhookAddressPolicy(allowPrivate: false).refusalAtSubmit(url)
        #expect(refusal?.code == "webhook_url_refused")
        #expect(
            WebhookAddressPolicy(allowPrivate: false).refusalBeforeSending(URL(string: url)!) != nil
                || !WebhookAddressPolicy.isNumeric(URL(string: url)!.host!.trimmingCharacters(in: ["[", "]"])))
        #expect(WebhookAddressPolicy(allowPrivate: true).refusalAtSubmit(url) == nil)
    }

    @Test(arguments: ["https://example.com/hooks", "http://8.8.8.8:8080/x", "https://[2001:4860::8888]/"])
    func publicUrlsAreAccepted(url: String) {
        #expect(WebhookAddressPolicy(allowPrivate: false).refusalAtSubmit(url) == nil)
    }

    @Test(arguments: ["ftp://example.com/", "not a url", "http://user:pw@example.com/", "/relative"])
    func malformedUrlsAreInvalid(url: String) {
        #expect(WebhookAddressPolicy(allowPrivate: false).refusalAtSubmit(url)?.code == "invalid_parameter")
    }

    @Test func aSubmitWithAPrivateWebhookUrlIsRefusedAndNothingIsQueued() async throws {
        try await AuthTestApp.run { service, client, keys in
            let form = try MultipartForm.valid(fields: ["webhook_url": "http://127.0.0.1:9/hook"])
            let response = try await AuthTestApp.submitResponse(client, as: keys.alice, form: form)
            #expect(response.status == .unprocessableContent)
            #expect(response.json["error"]?["code"] == .string("webhook_url_refused"))
            #expect(response.json["error"]?["field"] == .string("webhook_url"))
            #expect(try await service.repository.activeJobs().queued.isEmpty)
        }
    }

    @Test func theOutboxKeepsEachJobEventOnceButEveryProgress() async throws {
        let outbox = try SQLiteDatabase.inMemory().webhooks
        func delivery(_ event: WebhookEvent) -> WebhookDelivery {
            WebhookDelivery(jobID: "j", owner: nil, url: "http://x/", event: event, body: "{}", now: Date())
        }
        #expect(try await outbox.add(delivery(.completed)))
        #expect(try await outbox.add(delivery(.completed)) == false)
        #expect(try await outbox.add(delivery(.progress)))
        #expect(try await outbox.add(delivery(.progress)))
        #expect(try await outbox.due(at: Date().addingTimeInterval(1), limit: 10).count == 3)
        let latest = try #require(try await outbox.latest(ofJob: "j"))
        #expect(latest.event == .progress && latest.state == .pending)
    }
}
