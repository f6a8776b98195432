import Foundation

/// One job parameter as the engine declares it in `hello` (`capabilities.parameters`, docs/engine-protocol.md).
///
/// The engine's list is the one source of what a job's `params` may hold: the service validates forms against it
/// (`ParameterSchema`), `GET /api/config` shows it, and the engine checks every job against it again.
public struct ParameterSpec: Codable, Sendable, Equatable {
    /// The key in `params` and the form field (`steps`, `prompt`, ...).
    public var name: String
    /// `string`, `integer`, `number`, `boxes` (JSON `[[x_min, y_min, x_max, y_max], ...]`) or `path` (a file the
    /// service provides from the upload named without `_path`: `audio2_path` from `audio2`). Other types are not
    /// form fields.
    public var type: String
    public var description: String
    /// Used when the job leaves the parameter out; `null`: the engine decides (shown as `null` in `params`).
    public var `default`: ParameterValue
    public var choices: [ParameterValue]?
    public var minimum: Double?
    public var maximum: Double?
    public var maxLength: Int?
    /// `boxes`: how many.
    public var count: Int?
    /// Another parameter that must be set for this one to be used (`speaker_boxes` needs `audio2_path`).
    public var requires: String?

    public init(
        name: String, type: String, description: String = "", default: ParameterValue = .null,
        choices: [ParameterValue]? = nil, minimum: Double? = nil, maximum: Double? = nil, maxLength: Int? = nil,
        count: Int? = nil, requires: String? = nil
    ) {
        self.name = name
        self.type = type
        self.description = description
        self.default = `default`
        self.choices = choices
        self.minimum = minimum
        self.maximum = maximum
        self.maxLength = maxLength
        self.count = count
        self.requires = requires
    }

    enum CodingKeys: String, CodingKey {
        case name, type, description, `default`, choices, minimum, maximum, maxLength, count, requires
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        type = try container.decode(String.self, forKey: .type)
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        `default` = try container.decodeIfPresent(ParameterValue.self, forKey: .default) ?? .null
        choices = try container.decodeIfPresent([ParameterValue].self, forKey: .choices)
        minimum = try container.decodeIfPresent(Double.self, forKey: .minimum)
        maximum = try container.decodeIfPresent(Double.self, forKey: .maximum)
        maxLength = try container.decodeIfPresent(Int.self, forKey: .maxLength)
        count = try container.decodeIfPresent(Int.self, forKey: .count)
        requires = try container.decodeIfPresent(String.self, forKey: .requires)
    }

    /// A `path` parameter's upload field (`audio2_path` → `audio2`); `nil` for other types.
    public var uploadField: String? {
        guard type == "path" else { return nil }
        return name.hasSuffix("_path") ? String(name.dropLast("_path".count)) : name
    }

    /// Whether clients set it as a text form field (not a file, not a type this service does not know).
    public var isFormField: Bool { ["string", "integer", "number", "boxes", "loras"].contains(type) }
}
