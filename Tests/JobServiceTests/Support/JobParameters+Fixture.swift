@testable import JobService

extension JobParameters {
    /// A job's parameters as the preview engine's schema makes them from a form with only `seed` (every key of
    /// `params`, defaults filled in), with `values` replacing some.
    init(seed: Int, _ values: [String: ParameterValue] = [:]) {
        var all: [String: ParameterValue] = [
            "resolution": .string("480p"), "steps": .integer(4), "seed": .integer(seed),
            "prompt": .string("A person is talking."), "negative_prompt": .null, "shift": .null,
            "text_guidance_scale": .null, "audio_guidance_scale": .null, "color_correction": .null,
            "speaker_boxes": .null,
        ]
        all.merge(values) { _, new in new }
        self.init(all)
    }
}
