/// The generation options a client chose (or their defaults), as stored with the job and sent to the engine.
///
/// `nil` means "the engine's default"; `seed` is always chosen at submission so a result can be reproduced.
public struct JobParameters: Codable, Sendable, Equatable {
    public var resolution: String
    public var steps: Int
    public var seed: Int
    public var prompt: String
    public var negativePrompt: String?
    public var shift: Double?
    public var textGuidanceScale: Double?
    public var audioGuidanceScale: Double?
    public var colorCorrection: Double?
    /// Two-speaker jobs: where each speaker is in the image, `[x_min, y_min, x_max, y_max]` in image pixels.
    public var speakerBoxes: [[Double]]?

    public static let defaultPrompt = "A person is talking."
    public static let defaultResolution = "480p"
    public static let defaultSteps = 4

    public init(resolution: String = JobParameters.defaultResolution, steps: Int = JobParameters.defaultSteps,
                seed: Int, prompt: String = JobParameters.defaultPrompt, negativePrompt: String? = nil,
                shift: Double? = nil, textGuidanceScale: Double? = nil, audioGuidanceScale: Double? = nil,
                colorCorrection: Double? = nil, speakerBoxes: [[Double]]? = nil) {
        self.resolution = resolution
        self.steps = steps
        self.seed = seed
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.shift = shift
        self.textGuidanceScale = textGuidanceScale
        self.audioGuidanceScale = audioGuidanceScale
        self.colorCorrection = colorCorrection
        self.speakerBoxes = speakerBoxes
    }

    // Nil options are written as `null` (not left out) so clients see every key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(resolution, forKey: .resolution)
        try container.encode(steps, forKey: .steps)
        try container.encode(seed, forKey: .seed)
        try container.encode(prompt, forKey: .prompt)
        try container.encode(negativePrompt, forKey: .negativePrompt)
        try container.encode(shift, forKey: .shift)
        try container.encode(textGuidanceScale, forKey: .textGuidanceScale)
        try container.encode(audioGuidanceScale, forKey: .audioGuidanceScale)
        try container.encode(colorCorrection, forKey: .colorCorrection)
        try container.encode(speakerBoxes, forKey: .speakerBoxes)
    }
}
