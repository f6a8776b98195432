import Foundation

/// The job parameters this service accepts: the engine's declared `parameters` (from its `hello`), tightened by
/// the service's own limits. `--max-steps` caps `steps` and `--max-prompt-length` caps every free-text parameter;
/// the stricter of the engine's and the service's limit wins.
public struct ParameterSchema: Sendable, Equatable {
    /// In the engine's order (the order a form shows them).
    public let parameters: [ParameterSpec]

    public init(engine parameters: [ParameterSpec], maxSteps: Int, maxPromptLength: Int) {
        self.parameters = parameters.map { spec in
            var spec = spec
            if spec.name == "steps", spec.type == "integer" {
                spec.maximum = min(spec.maximum ?? Double(maxSteps), Double(maxSteps))
            }
            if spec.type == "string", spec.choices == nil {
                spec.maxLength = min(spec.maxLength ?? maxPromptLength, maxPromptLength)
            }
            return spec
        }
    }

    /// The schema of the engine that said `hello`, with this service's limits.
    public init(hello: EngineHello, configuration: ServiceConfiguration) {
        self.init(
            engine: hello.capabilities.parameters ?? [], maxSteps: configuration.maxSteps,
            maxPromptLength: configuration.maxPromptLength)
    }

    public func spec(named name: String) -> ParameterSpec? {
        parameters.first { $0.name == name }
    }

    /// Whether jobs may have a second speaker: the engine takes `audio2_path` (uploaded as `audio2`).
    public var takesSecondSpeaker: Bool { spec(named: "audio2_path")?.type == "path" }

    /// Reads a job's parameters from the text fields of a form: every form parameter the engine declares, with its
    /// value, else its default (`null` when the engine decides). Absent or empty fields take their defaults; unknown
    /// fields are ignored. `seed` is always chosen here, so a result can be reproduced.
    /// - Parameters:
    ///   - uploads: the names of the files that came with the form (a `path` parameter's upload counts as set).
    ///   - randomSeed: the seed used when the client gave none.
    /// - Throws: `APIError` 422 `invalid_parameter` naming the field.
    public func parse(
        fields: [String: String], uploads: Set<String> = [],
        randomSeed: (ClosedRange<Int>) -> Int = { Int.random(in: $0) }
    ) throws -> JobParameters {
        var values: [String: ParameterValue] = [:]
        for spec in parameters where spec.isFormField {
            let text = fields[spec.name]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if !text.isEmpty {
                values[spec.name] = try Self.read(text, as: spec)
            } else if spec.name == "seed", spec.type == "integer", spec.default.isNull {
                values[spec.name] = .integer(randomSeed(Self.integerRange(of: spec)))
            } else {
                values[spec.name] = spec.default
            }
        }
        for spec in parameters where spec.isFormField {
            guard let required = spec.requires, values[spec.name]?.isNull == false else { continue }
            let requiredSpec = self.spec(named: required)
            let isSet =
                requiredSpec?.uploadField.map { uploads.contains($0) } ?? (values[required].map { !$0.isNull } ?? false)
            if !isSet {
                let what = requiredSpec?.uploadField ?? required
                throw APIError.invalidParameter(spec.name, "\(spec.name) needs \(what): send \(what) too.")
            }
        }
        return JobParameters(values)
    }

    // MARK: - One field

    private static func read(_ text: String, as spec: ParameterSpec) throws -> ParameterValue {
        let name = spec.name
        let value: ParameterValue
        switch spec.type {
        case "integer":
            let range = integerRange(of: spec)
            guard let number = Int(text), range.contains(number) else {
                throw APIError.invalidParameter(name, "\(name) must be an integer\(rangeInWords(of: spec)).")
            }
            value = .integer(number)
        case "number":
            guard let number = Double(text), number.isFinite, number >= spec.minimum ?? -.infinity,
                number <= spec.maximum ?? .infinity
            else {
                throw APIError.invalidParameter(name, "\(name) must be a number\(rangeInWords(of: spec)).")
            }
            value = .number(number)
        case "boxes":
            value = .boxes(try boxes(text, as: spec))
        default:
            if let maxLength = spec.maxLength, text.count > maxLength {
                throw APIError.invalidParameter(name, "\(name) is longer than \(maxLength) characters.")
            }
            value = .string(text)
        }
        if let choices = spec.choices,
            !choices.contains(where: { $0 == value || ($0.doubleValue != nil && $0.doubleValue == value.doubleValue) })
        {
            throw APIError.invalidParameter(
                name, "\(name) must be one of \(choices.map(\.text).joined(separator: ", ")).")
        }
        return value
    }

    /// `[[x_min, y_min, x_max, y_max], ...]` in image pixels, each with 0 <= min < max, `count` of them.
    private static func boxes(_ text: String, as spec: ParameterSpec) throws -> [[Double]] {
        let count = spec.count.map { "\($0) " } ?? ""
        let invalid = APIError.invalidParameter(
            spec.name,
            "\(spec.name) must be JSON with \(count)boxes [[x_min, y_min, x_max, y_max], [...]] in image pixels, each with min < max."
        )
        guard let boxes = try? JSONDecoder().decode([[Double]].self, from: Data(text.utf8)),
            spec.count.map({ boxes.count == $0 }) ?? !boxes.isEmpty,
            boxes.allSatisfy({
                $0.count == 4 && $0.allSatisfy { $0.isFinite && $0 >= 0 } && $0[0] < $0[2] && $0[1] < $0[3]
            })
        else { throw invalid }
        return boxes
    }

    private static func integerRange(of spec: ParameterSpec) -> ClosedRange<Int> {
        let lower = spec.minimum.map { Int($0.rounded(.up)) } ?? Int.min
        let upper = spec.maximum.map { Int($0.rounded(.down)) } ?? Int.max
        return lower...max(lower, upper)
    }

    private static func rangeInWords(of spec: ParameterSpec) -> String {
        switch (spec.minimum, spec.maximum) {
        case (let lower?, let upper?): " in \(ParameterValue.number(lower).text)...\(ParameterValue.number(upper).text)"
        case (let lower?, nil): " of at least \(ParameterValue.number(lower).text)"
        case (nil, let upper?): " of at most \(ParameterValue.number(upper).text)"
        case (nil, nil): ""
        }
    }
}
