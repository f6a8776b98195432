import Foundation

/// One job parameter's value as JSON: what a form field was read into, what is stored and sent to the engine.
public enum ParameterValue: Codable, Sendable, Equatable, Hashable {
    case null
    case string(String)
    case integer(Int)
    case number(Double)
    case boxes([[Double]])
    /// A JSON value of another shape (e.g. a `choices` entry of a future engine); kept as it came.
    case list([ParameterValue])
    case bool(Bool)
    /// A JSON object (a `loras` entry: `{"name", "scale"}`).
    case object([String: ParameterValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([[Double]].self) {
            self = .boxes(value)
        } else if let value = try? container.decode([String: ParameterValue].self) {
            self = .object(value)
        } else {
            self = .list(try container.decode([ParameterValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .string(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .boxes(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public var isNull: Bool { self == .null }

    public var intValue: Int? { if case .integer(let value) = self { value } else { nil } }

    public var doubleValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }

    public var stringValue: String? { if case .string(let value) = self { value } else { nil } }

    /// How the value reads in a message (`480p`, `4`, `0.5`).
    public var text: String {
        switch self {
        case .null: "null"
        case .string(let value): value
        case .integer(let value): String(value)
        case .number(let value): value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
        case .bool(let value): String(value)
        case .boxes, .list, .object:
            (try? String(decoding: JSONEncoder().encode(self), as: UTF8.self)) ?? "?"
        }
    }
}
