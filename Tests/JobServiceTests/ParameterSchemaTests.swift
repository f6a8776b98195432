import Foundation
import GRDB
import Testing

@testable import JobService

/// The job parameters as the engine declares them, tightened by the service, read from a form; stored rows.
@Suite struct ParameterSchemaTests {
    /// The preview engine's declaration (as `standard_parameters` in engine/infinitetalk_engine/parameters.py).
    static let engineParameters: [ParameterSpec] = [
        ParameterSpec(
            name: "resolution", type: "string", default: .string("480p"), choices: [.string("480p"), .string("720p")]),
        ParameterSpec(name: "steps", type: "integer", default: .integer(4), minimum: 1, maximum: 50),
        ParameterSpec(name: "seed", type: "integer", minimum: 0, maximum: 2_147_483_647),
        ParameterSpec(name: "prompt", type: "string", default: .string("A person is talking."), maxLength: 2000),
        ParameterSpec(name: "negative_prompt", type: "string", maxLength: 2000),
        ParameterSpec(name: "shift", type: "number", minimum: 0.5, maximum: 20),
        ParameterSpec(name: "audio2_path", type: "path"),
        ParameterSpec(name: "speaker_boxes", type: "boxes", count: 2, requires: "audio2_path"),
        ParameterSpec(name: "future_option", type: "colour"),
    ]

    private let schema = ParameterSchema(engine: engineParameters, maxSteps: 20, maxPromptLength: 10)

    @Test func theServiceLimitsTightenTheEnginesButNeverLoosenThem() {
        #expect(schema.spec(named: "steps")?.maximum == 20)
        #expect(schema.spec(named: "prompt")?.maxLength == 10)
        #expect(schema.spec(named: "negative_prompt")?.maxLength == 10)
        #expect(schema.spec(named: "resolution")?.maxLength == nil, "a choice is not free text")
        let loose = ParameterSchema(engine: Self.engineParameters, maxSteps: 100, maxPromptLength: 5000)
        #expect(loose.spec(named: "steps")?.maximum == 50)
        #expect(loose.spec(named: "prompt")?.maxLength == 2000)
        #expect(schema.takesSecondSpeaker)
    }

    @Test func aFormGetsEveryFormParameterWithItsValueOrDefault() throws {
        let parameters = try schema.parse(
            fields: ["steps": " 8 ", "shift": "2.5", "unknown": "x", "audio2_path": "/etc/passwd"],
            randomSeed: { range in
                #expect(range == 0...2_147_483_647)
                return 99
            })
        #expect(
            parameters.values == [
                "resolution": .string("480p"), "steps": .integer(8), "seed": .integer(99),
                "prompt": .string("A person is talking."), "negative_prompt": .null, "shift": .number(2.5),
                "speaker_boxes": .null,
            ], "paths come from uploads, not from text fields; unknown types are not form fields")
    }

    @Test(arguments: [
        ("resolution", "1080p", "resolution must be one of 480p, 720p."),
        ("steps", "21", "steps must be an integer in 1...20."),
        ("steps", "2.5", "steps must be an integer in 1...20."),
        ("seed", "-1", "seed must be an integer in 0...2147483647."),
        ("shift", "0.1", "shift must be a number in 0.5...20."),
        ("shift", "inf", "shift must be a number in 0.5...20."),
        ("prompt", "eleven char", "prompt is longer than 10 characters."),
        ("speaker_boxes", "[[0, 0, 1, 1]]", nil),
    ])
    func valuesOutsideTheSchemaAreRefusedNamingTheField(field: String, value: String, message: String?) throws {
        do {
            _ = try schema.parse(fields: [field: value], uploads: ["audio2"])
            Issue.record("\(field)=\(value) was accepted")
        } catch let error as APIError {
            #expect(error.code == "invalid_parameter")
            #expect(error.field == field)
            if let message { #expect(error.message == message) }
        }
    }

    @Test func aParameterThatNeedsAnUploadIsRefusedWithoutIt() throws {
        let boxes = "[[0, 0, 48, 96], [48, 0, 96, 96]]"
        #expect(throws: APIError.self) { try schema.parse(fields: ["speaker_boxes": boxes]) }
        let parameters = try schema.parse(fields: ["speaker_boxes": boxes], uploads: ["audio2"])
        #expect(parameters["speaker_boxes"] == .boxes([[0, 0, 48, 96], [48, 0, 96, 96]]))
    }

    @Test func theJobMessageSendsTheStoredParametersAsTheyAre() throws {
        let parameters = try schema.parse(fields: ["seed": "5"])
        let request = EngineJobRequest(
            jobID: "j", imagePath: "/i", audioPath: "/a", audio2Path: "/a2", outputPath: "/o", parameters: parameters)
        let json = try JSONValue.parse(EngineCommand.job(request).encoded())
        #expect(json["params"]?["seed"] == .integer(5))
        #expect(json["params"]?["negative_prompt"] == .null)
        #expect(json["params"]?["audio2_path"] == .string("/a2"))
        #expect(json["params"]?.objectValue?.count == parameters.values.count + 1)
    }

    // MARK: - Stored rows

    @Test func rowsStoredBeforeTheSchemaStillLoadWithSnakeCaseKeys() async throws {
        // Given a row written by the old `JobParameters` (camelCase keys, no speaker boxes yet)
        let path = TestSupport.makeTemporaryDirectory("itk-db") + "/jobs.sqlite"
        let repository = try GRDBJobRepository.open(path: path)
        let legacy =
            #"{"resolution":"720p","steps":8,"seed":3,"prompt":"Hi","negativePrompt":null,"shift":5,"textGuidanceScale":null,"audioGuidanceScale":2.5,"colorCorrection":null}"#
        // (written through a second connection: the repository itself only writes its own records)
        try await AppDatabase.openPool(path: path).write { db in
            try db.execute(
                sql: """
                    INSERT INTO job (id, sequence, status, message, parameters, imagePath, audioPath, audioSeconds,
                                     resultPath, attempts, createdAt)
                    VALUES ('old', 1, 'completed', 'Video ready', ?, '/i', '/a', 1, '/r', 1, '2026-11-25 14:30:00.000')
                    """, arguments: [legacy])
        }
        // When it is read
        let job = try #require(try await repository.job(id: "old"))
        // Then its parameters have the API's keys, the missing ones null
        #expect(
            job.parameters.values == [
                "resolution": .string("720p"), "steps": .integer(8), "seed": .integer(3), "prompt": .string("Hi"),
                "negative_prompt": .null, "shift": .integer(5), "text_guidance_scale": .null,
                "audio_guidance_scale": .number(2.5), "color_correction": .null, "speaker_boxes": .null,
            ])
    }
}
