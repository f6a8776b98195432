/// The generation options a client chose (or their defaults), as stored with the job and sent to the engine.
///
/// `nil` means "the engine's default" (written as `null`, so clients see every key); `seed` is always chosen at
/// submission so a result can be reproduced.
public struct JobParameters: Codable, Sendable, Equatable {
    public var resolution: String
    public var steps: Int
    public var seed: Int
    public var prompt: String
    @NullEncoded public var negativePrompt: String?
    @NullEncoded public var shift: Double?
    @NullEncoded public var textGuidanceScale: Double?
    @NullEncoded public var audioGuidanceScale: Double?
    @NullEncoded public var colorCorrection: Double?
    /// Two-speaker jobs: where each speaker is in the image, `[x_min, y_min, x_max, y_max]` in image pixels.
    @NullEncoded public var speakerBoxes: [[Double]]?

    public static let defaultPrompt = "A person is talking."
    public static let defaultResolution = "480p"
    public static let defaultSteps = 4

    public init(
        resolution: String = JobParameters.defaultResolution, steps: Int = JobParameters.defaultSteps,
        seed: Int, prompt: String = JobParameters.defaultPrompt, negativePrompt: String? = nil,
        shift: Double? = nil, textGuidanceScale: Double? = nil, audioGuidanceScale: Double? = nil,
        colorCorrection: Double? = nil, speakerBoxes: [[Double]]? = nil
    ) {
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
}
