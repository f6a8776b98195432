import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import JobService

@Suite struct APIErrorTests {
    @Test func carriesItsStableCode() {
        let error = APIError(.unprocessableContent, code: "invalid_parameter", message: "bad", field: "steps")
        #expect(error.code == "invalid_parameter")
        #expect(error.field == "steps")
    }

    /// An error no handler turned into an answer (a bug, a file system surprise) was a 500 with an empty body.
    @Test func anUnexpectedErrorIsA500JSONWithAGenericMessage() async throws {
        struct Surprise: Error, CustomStringConvertible {
            var description: String { "No space left on device: '/srv/data/results/x.mp4.part'" }
        }
        let router = Router(context: AppRequestContext.self)
        router.add(middleware: JSONErrorMiddleware(logger: TestSupport.quietLogger))
        router.get("/surprise") { _, _ -> String in throw Surprise() }
        try await Application(router: router).test(.router) { client in
            let response = try await client.execute(uri: "/surprise", method: .get)
            #expect(response.status == .internalServerError)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            #expect(response.json["error"]?["code"] == .string("internal"))
            let message = try #require(response.json["error"]?["message"]?.stringValue)
            #expect(!message.contains("/srv/data") && !message.contains("No space"), "details only in the log")
        }
    }
}
