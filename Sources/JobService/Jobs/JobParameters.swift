import Foundation

/// The generation options of one job, as stored with it and sent to the engine: every form parameter the engine
/// declared when the job was submitted (`ParameterSchema.parse`), with the client's value or the default.
///
/// Keys are the engine's `snake_case` names; `null` means "the engine's default" (written as `null`, so clients see
/// every key). `seed` is always chosen at submission so a result can be reproduced.
public struct JobParameters: Codable, Sendable, Equatable {
    public var values: [String: ParameterValue]

    public init(_ values: [String: ParameterValue]) {
        self.values = values
    }

    public subscript(name: String) -> ParameterValue? { values[name] }

    /// The seed the job runs with.
    public var seed: Int? { values["seed"]?.intValue }

    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in values { try container.encode(value, forKey: Key(stringValue: name)) }
    }

    /// Also reads rows stored before the engine declared its parameters: their keys are camelCase
    /// (`negativePrompt`), and the oldest lack `speakerBoxes`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        var values: [String: ParameterValue] = [:]
        var isLegacy = false
        for key in container.allKeys {
            let name = Self.snakeCased(key.stringValue)
            isLegacy = isLegacy || name != key.stringValue
            values[name] = try container.decode(ParameterValue.self, forKey: key)
        }
        if isLegacy, values["speaker_boxes"] == nil { values["speaker_boxes"] = .null }
        self.values = values
    }

    private static func snakeCased(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}
