import Foundation

/// The limits a submitted form's options are checked against.
public struct ParameterLimits: Sendable {
    public var maxPromptLength: Int = 2000
    public var maxSteps: Int = 50
    /// Resolutions the engine can render.
    public var resolutions: [String] = ["480p", "720p"]

    public init(maxPromptLength: Int = 2000, maxSteps: Int = 50, resolutions: [String] = ["480p", "720p"]) {
        self.maxPromptLength = maxPromptLength
        self.maxSteps = maxSteps
        self.resolutions = resolutions
    }
}

extension JobParameters {
    /// Reads the options of `POST /api/generate` from its text fields. Absent or empty fields take their defaults;
    /// unknown fields are ignored.
    /// - Parameter randomSeed: the seed used when the client gave none.
    /// - Throws: `APIError` 422 `invalid_parameter` naming the field.
    public static func parse(
        fields: [String: String], limits: ParameterLimits,
        randomSeed: () -> Int = { Int.random(in: 0...2_147_483_647) }
    ) throws -> JobParameters {
        let form = FormReader(fields: fields)
        var parameters = JobParameters(seed: 0)
        if let resolution = form.text("resolution") {
            guard limits.resolutions.contains(resolution) else {
                throw APIError.invalidParameter(
                    "resolution",
                    "resolution must be one of \(limits.resolutions.joined(separator: ", ")).")
            }
            parameters.resolution = resolution
        }
        parameters.steps = try form.integer("steps", in: 1...limits.maxSteps) ?? JobParameters.defaultSteps
        parameters.seed = try form.integer("seed", in: 0...2_147_483_647) ?? randomSeed()
        parameters.prompt = try form.prompt("prompt", maxLength: limits.maxPromptLength) ?? JobParameters.defaultPrompt
        parameters.negativePrompt = try form.prompt("negative_prompt", maxLength: limits.maxPromptLength)
        parameters.shift = try form.number("shift", in: 0.5...20)
        parameters.textGuidanceScale = try form.number("text_guidance_scale", in: 0...20)
        parameters.audioGuidanceScale = try form.number("audio_guidance_scale", in: 0...20)
        parameters.colorCorrection = try form.number("color_correction", in: 0...1)
        parameters.speakerBoxes = try form.speakerBoxes("speaker_boxes")
        return parameters
    }
}

/// Typed access to form fields, with `invalid_parameter` errors that name the field.
private struct FormReader {
    let fields: [String: String]

    func text(_ name: String) -> String? {
        guard let value = fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            return nil
        }
        return value
    }

    func prompt(_ name: String, maxLength: Int) throws -> String? {
        guard let value = text(name) else { return nil }
        guard value.count <= maxLength else {
            throw APIError.invalidParameter(name, "\(name) is longer than \(maxLength) characters.")
        }
        return value
    }

    func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let value = text(name) else { return nil }
        guard let number = Int(value), range.contains(number) else {
            throw APIError.invalidParameter(
                name, "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound).")
        }
        return number
    }

    func number(_ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let value = text(name) else { return nil }
        guard let number = Double(value), number.isFinite, range.contains(number) else {
            throw APIError.invalidParameter(
                name, "\(name) must be a number in \(format(range.lowerBound))...\(format(range.upperBound)).")
        }
        return number
    }

    /// Two boxes as JSON: `[[x_min, y_min, x_max, y_max], [x_min, y_min, x_max, y_max]]`, in image pixels.
    func speakerBoxes(_ name: String) throws -> [[Double]]? {
        guard let value = text(name) else { return nil }
        let invalid = APIError.invalidParameter(
            name,
            "\(name) must be JSON with two boxes [[x_min, y_min, x_max, y_max], [...]] in image pixels, each with min < max."
        )
        guard let boxes = try? JSONDecoder().decode([[Double]].self, from: Data(value.utf8)), boxes.count == 2,
            boxes.allSatisfy({
                $0.count == 4 && $0.allSatisfy { $0.isFinite && $0 >= 0 } && $0[0] < $0[2] && $0[1] < $0[3]
            })
        else { throw invalid }
        return boxes
    }

    private func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
