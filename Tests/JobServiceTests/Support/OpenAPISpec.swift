import Foundation
import HummingbirdTesting
import Testing

@testable import JobService

/// The served OpenAPI document, used to check real responses: each JSON body must match the schema documented for
/// its path, method and status (which must therefore be documented).
enum OpenAPISpec {
    static let document: JSONValue = try! JSONValue.parse(OpenAPIDocument.data!)
    static let checker = JSONSchemaChecker(document: document)

    /// Problems of `response` to `method path` (path as templated in the document, e.g. `/api/status/{request_id}`).
    static func problems(_ response: TestResponse, path: String, method: String) -> [String] {
        let status = String(response.status.code)
        guard let operation = document["paths"]?[path]?[method.lowercased()] else {
            return ["\(method) \(path) is not documented"]
        }
        guard let documented = operation["responses"]?[status] else {
            return ["\(method) \(path) does not document status \(status)"]
        }
        guard let schema = documented["content"]?["application/json"]?["schema"] else { return [] }
        guard let value = try? JSONValue.parse(Data(response.body.readableBytesView)) else {
            return ["\(method) \(path) \(status): body is not JSON"]
        }
        return checker.problems(value, against: schema)
    }

    /// Problems of one WebSocket message from the server.
    static func problems(ofServerMessage text: String) -> [String] {
        guard let value = try? JSONValue.parse(text) else { return ["not JSON: \(text)"] }
        return checker.problems(value, against: .object(["$ref": .string("#/components/schemas/ServerMessage")]))
    }
}

/// Expects `response` to match the OpenAPI document.
func expectConforms(
    _ response: TestResponse, _ method: String, _ path: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let problems = OpenAPISpec.problems(response, path: path, method: method)
    #expect(problems.isEmpty, "\(method) \(path): \(problems)", sourceLocation: sourceLocation)
}

extension TestResponse {
    /// The body parsed as JSON (`.null` when there is none).
    var json: JSONValue {
        guard let value = try? JSONValue.parse(Data(body.readableBytesView)) else { return .null }
        return value
    }

    /// `error.code` of an error body.
    var errorCode: String? { json["error"]?["code"]?.stringValue }
    var errorField: String? { json["error"]?["field"]?.stringValue }
}
