import Foundation

/// A parsed JSON value that keeps booleans, integers and other numbers apart (JSONSerialization does not).
indirect enum JSONValue: Decodable, Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    static func parse(_ data: Data) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: data) }
    static func parse(_ text: String) throws -> JSONValue { try parse(Data(text.utf8)) }

    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { object[key] } else { nil }
    }

    var stringValue: String? { if case .string(let value) = self { value } else { nil } }
    var arrayValue: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    var objectValue: [String: JSONValue]? { if case .object(let value) = self { value } else { nil } }
    var doubleValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }
    var intValue: Int? { if case .integer(let value) = self { Int(value) } else { nil } }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .integer(let value): "\(value)"
        case .number(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        case .array(let values): "[\(values.map(\.description).joined(separator: ","))]"
        case .object(let object): "{\(object.keys.sorted().map { "\"\($0)\":\(object[$0]!)" }.joined(separator: ","))}"
        }
    }

    fileprivate var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer: "integer"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

/// Checks JSON values against a JSON Schema (2020-12 / OpenAPI 3.1) subset: `$ref` within the document, `type`,
/// `required`, `properties`, `items`, `const`, `enum`, `oneOf` / `anyOf` / `allOf` / `not`, `minimum`,
/// `maximum`, `minLength`, `minItems`, `maxItems`. Enough to catch a missing key or a wrong type.
struct JSONSchemaChecker: Sendable {
    let document: JSONValue

    /// Problems found (empty when `value` conforms), each with its JSON path.
    func problems(_ value: JSONValue, against schema: JSONValue, path: String = "$") -> [String] {
        guard case .object(let rules) = schema else { return [] }
        if let reference = rules["$ref"]?.stringValue {
            guard let target = resolve(reference) else { return ["\(path): unresolvable $ref \(reference)"] }
            return problems(value, against: target, path: path)
        }
        var found: [String] = []
        if let type = rules["type"] {
            let allowed = type.arrayValue?.compactMap(\.stringValue) ?? [type.stringValue ?? ""]
            let actual = value.typeName
            let matches = allowed.contains(actual) || (actual == "integer" && allowed.contains("number"))
            if !matches { return ["\(path): expected \(allowed.joined(separator: "|")), got \(actual) \(value)"] }
        }
        if let constant = rules["const"], !same(constant, value) {
            found.append("\(path): expected \(constant), got \(value)")
        }
        if let options = rules["enum"]?.arrayValue, !options.contains(where: { same($0, value) }) {
            found.append("\(path): \(value) is not one of \(options)")
        }
        if case .object(let object) = value {
            for key in rules["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where object[key] == nil {
                found.append("\(path): missing required key `\(key)`")
            }
            for (key, propertySchema) in rules["properties"]?.objectValue ?? [:] {
                if let property = object[key] {
                    found += problems(property, against: propertySchema, path: "\(path).\(key)")
                }
            }
        }
        if case .array(let items) = value {
            if let itemSchema = rules["items"] {
                for (index, item) in items.enumerated() {
                    found += problems(item, against: itemSchema, path: "\(path)[\(index)]")
                }
            }
            if let minimum = rules["minItems"]?.intValue, items.count < minimum {
                found.append("\(path): fewer than \(minimum) items")
            }
            if let maximum = rules["maxItems"]?.intValue, items.count > maximum {
                found.append("\(path): more than \(maximum) items")
            }
        }
        if case .string(let text) = value, let minimum = rules["minLength"]?.intValue, text.count < minimum {
            found.append("\(path): shorter than \(minimum)")
        }
        if let number = value.doubleValue {
            if let minimum = rules["minimum"]?.doubleValue, number < minimum {
                found.append("\(path): \(number) < \(minimum)")
            }
            if let maximum = rules["maximum"]?.doubleValue, number > maximum {
                found.append("\(path): \(number) > \(maximum)")
            }
        }
        for sub in rules["allOf"]?.arrayValue ?? [] { found += problems(value, against: sub, path: path) }
        for key in ["oneOf", "anyOf"] {
            if let options = rules[key]?.arrayValue,
                !options.contains(where: { problems(value, against: $0, path: path).isEmpty })
            {
                found.append("\(path): matches none of the \(key) alternatives")
            }
        }
        if let negated = rules["not"], problems(value, against: negated, path: path).isEmpty {
            found.append("\(path): matches a `not` schema")
        }
        return found
    }

    /// Resolves `#/a/b/c` in the document.
    func resolve(_ reference: String) -> JSONValue? {
        guard reference.hasPrefix("#/") else { return nil }
        var node: JSONValue? = document
        for part in reference.dropFirst(2).split(separator: "/") {
            node =
                node?[String(part).replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")]
        }
        return node
    }

    private func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }
}
