import Foundation
import Testing

@testable import JobService

/// The engine protocol as this service speaks it, checked against `docs/engine-protocol.schema.json`.
@Suite struct EngineMessageTests {
    static let schema: JSONSchemaChecker = {
        let path = (TestSupport.repositoryRoot as NSString).appendingPathComponent("docs/engine-protocol.schema.json")
        let document = try! JSONValue.parse(try! Data(contentsOf: URL(fileURLWithPath: path)))
        return JSONSchemaChecker(document: document)
    }()

    private func problems(_ line: String, definition: String) throws -> [String] {
        let schema = try #require(Self.schema.resolve("#/$defs/\(definition)"))
        return Self.schema.problems(try JSONValue.parse(line), against: schema)
    }

    @Test func everyCommandWeSendFollowsTheSchema() throws {
        let request = EngineJobRequest(
            jobID: "job-1", imagePath: "/u/image", audioPath: "/u/audio", outputPath: "/r/job-1.mp4",
            parameters: JobParameters(
                resolution: "720p", steps: 8, seed: 42, negativePrompt: "blur",
                shift: 5, colorCorrection: 0.5))
        #expect(try problems(EngineCommand.job(request).encoded(), definition: "job") == [])
        #expect(try problems(EngineCommand.cancel(jobID: "job-1").encoded(), definition: "cancel") == [])
        #expect(try problems(EngineCommand.heartbeat(seq: 3).encoded(), definition: "heartbeat_request") == [])
        #expect(try problems(EngineCommand.shutdown.encoded(), definition: "shutdown") == [])
        // And the whole schema (oneOf) accepts them
        let whole = Self.schema.document
        #expect(Self.schema.problems(try JSONValue.parse(EngineCommand.job(request).encoded()), against: whole) == [])
    }

    @Test func theJobMessageCarriesSnakeCaseKeys() throws {
        let request = EngineJobRequest(
            jobID: "j", imagePath: "/i", audioPath: "/a", outputPath: "/o",
            parameters: JobParameters(seed: 1, textGuidanceScale: 5))
        let json = try JSONValue.parse(EngineCommand.job(request).encoded())
        #expect(json["job_id"] == .string("j"))
        #expect(json["params"]?["text_guidance_scale"] == .integer(5))
        #expect(json["params"]?["seed"] == .integer(1))
    }

    @Test func aTwoSpeakerJobCarriesTheSecondAudioAndTheBoxes() throws {
        let boxes: [[Double]] = [[0, 0, 320, 480], [320, 0, 640, 480]]
        let request = EngineJobRequest(
            jobID: "j", imagePath: "/i", audioPath: "/a", audio2Path: "/a2", outputPath: "/o",
            parameters: JobParameters(seed: 1, speakerBoxes: boxes))
        let line = EngineCommand.job(request).encoded()
        #expect(try problems(line, definition: "job") == [])
        let json = try JSONValue.parse(line)
        #expect(json["params"]?["audio2_path"] == .string("/a2"))
        #expect(json["params"]?["speaker_boxes"]?.arrayValue?[1].arrayValue?[2] == .integer(640))
    }

    @Test func engineEventsAreParsed() {
        let hello =
            #"{"type":"hello","protocol_version":1,"engine":"preview","engine_version":"0.1.0","capabilities":{"resolutions":["480p"],"fps":25,"max_concurrent_jobs":2,"device":"cpu","is_preview":true,"future_key":1}}"#
        guard case .hello(let parsed) = EngineEvent.parse(hello) else {
            Issue.record("hello not parsed")
            return
        }
        #expect(parsed.capabilities.maxConcurrentJobs == 2)
        #expect(EngineEvent.parse(#"{"type":"ready","load_seconds":0.4}"#) == .ready(loadSeconds: 0.4))
        #expect(EngineEvent.parse(#"{"type":"heartbeat","seq":17,"active_jobs":[]}"#) == .heartbeat(seq: 17))
        let progress = EngineEvent.parse(
            #"{"type":"progress","job_id":"j","step":3,"steps":4,"fraction":0.5,"eta_seconds":null}"#)
        #expect(progress.jobID == "j")
        let error = EngineEvent.parse(
            #"{"type":"error","job_id":null,"code":"load_failed","message":"no file","retryable":false}"#)
        #expect(error == .error(EngineError(jobId: nil, code: "load_failed", message: "no file", retryable: false)))
    }

    @Test func unusableLinesBecomeUnreadableNotCrashes() {
        for line in [
            "not json", "{broken", #"{"no_type":1}"#, #"{"type":"mystery"}"#, #"{"type":"done","job_id":"j"}"#,
        ] {
            guard case .unreadable = EngineEvent.parse(line) else {
                Issue.record("\(line) should be unreadable")
                continue
            }
        }
    }
}
