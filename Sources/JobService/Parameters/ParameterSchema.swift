import Foundation

/// The job parameters this service accepts: the engine's declared `parameters` (from its `hello`), tightened by
/// the service's own limits. `--max-steps` caps `steps` and `--max-prompt-length` caps every free-text parameter;
/// the stricter of the engine's and the service's limit wins.
public struct ParameterSchema: Sendable, Equatable {
    /// In the engine's order (the order a form shows them).
    public let parameters: [ParameterSpec]
    /// Why each library LoRA that does not fit the engine's model does not (`capabilities.loras`).
    public let loraProblems: [String: String]

    public init(
        engine parameters: [ParameterSpec], maxSteps: Int, maxPromptLength: Int, loraProblems: [String: String] = [:]
    ) {
        self.loraProblems = loraProblems
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
        var problems: [String: String] = [:]
        for lora in hello.capabilities.loras ?? [] where !lora.fits {
            problems[lora.name] = lora.reason ?? "it does not fit the engine's model"
        }
        self.init(
            engine: hello.capabilities.parameters ?? [], maxSteps: configuration.maxSteps,
            maxPromptLength: configuration.maxPromptLength, loraProblems: problems)
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
        if spec(named: "loras") == nil, let loras = fields["loras"], !loras.trimmingCharacters(in: .whitespaces).isEmpty
        {
            throw APIError(
                .unprocessableContent, code: "lora_unsupported",
                message: "This engine cannot apply LoRAs (the preview engine has no model); leave loras out.",
                field: "loras")
        }
        var values: [String: ParameterValue] = [:]
        for spec in parameters where spec.isFormField {
            let text = fields[spec.name]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if !text.isEmpty {
                values[spec.name] = try read(text, as: spec)
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

    private func read(_ text: String, as spec: ParameterSpec) throws -> ParameterValue {
        let name = spec.name
        let value: ParameterValue
        switch spec.type {
        case "integer":
            let range = Self.integerRange(of: spec)
            guard let number = Int(text), range.contains(number) else {
                throw APIError.invalidParameter(name, "\(name) must be an integer\(Self.rangeInWords(of: spec)).")
            }
            value = .integer(number)
        case "number":
            guard let number = Double(text), number.isFinite, number >= spec.minimum ?? -.infinity,
                number <= spec.maximum ?? .infinity
            else {
                throw APIError.invalidParameter(name, "\(name) must be a number\(Self.rangeInWords(of: spec)).")
            }
            value = .number(number)
        case "boxes":
            value = .boxes(try Self.boxes(text, as: spec))
        case "loras":
            return try loras(text, as: spec)
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

    /// `[{"name": "…", "scale": 0.8}, …]`: at most `count` LoRAs of the library (`choices`), each scale within
    /// minimum...maximum (default 1). An unknown name is 422 `unknown_lora`; a file that does not fit the engine's
    /// model, 422 `invalid_lora` with the engine's reason.
    private func loras(_ text: String, as spec: ParameterSpec) throws -> ParameterValue {
        let (low, high) = (spec.minimum ?? 0, spec.maximum ?? 2)
        let shape = APIError.invalidParameter(
            spec.name,
            "\(spec.name) must be JSON: [{\"name\": \"…\", \"scale\": 1.0}, …], at most \(spec.count ?? 3) LoRAs, scales \(Self.number(low))...\(Self.number(high))."
        )
        struct Entry: Decodable {
            let name: String
            let scale: Double?
        }
        guard let entries = try? JSONDecoder().decode([Entry].self, from: Data(text.utf8)) else { throw shape }
        guard entries.count <= spec.count ?? 3 else { throw shape }
        var value: [ParameterValue] = []
        for entry in entries {
            let scale = entry.scale ?? 1
            guard scale.isFinite, (low...high).contains(scale) else { throw shape }
            guard spec.choices?.contains(.string(entry.name)) ?? false else {
                throw APIError(
                    .unprocessableContent, code: "unknown_lora",
                    message: "There is no LoRA \(entry.name) in the library (GET /api/loras lists them).",
                    field: spec.name)
            }
            if let problem = loraProblems[entry.name] {
                throw APIError(
                    .unprocessableContent, code: "invalid_lora",
                    message: "The LoRA \(entry.name) does not fit this engine's model: \(problem).", field: spec.name)
            }
            value.append(.object(["name": .string(entry.name), "scale": .number(scale)]))
        }
        return .list(value)
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
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
