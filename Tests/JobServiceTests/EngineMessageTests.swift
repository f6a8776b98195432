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
                seed: 42,
                [
                    "resolution": .string("720p"), "steps": .integer(8), "negative_prompt": .string("blur"),
                    "shift": .number(5), "color_correction": .number(0.5),
                ]))
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
            parameters: JobParameters(seed: 1, ["text_guidance_scale": .number(5)]))
        let json = try JSONValue.parse(EngineCommand.job(request).encoded())
        #expect(json["job_id"] == .string("j"))
        #expect(json["params"]?["text_guidance_scale"] == .integer(5))
        #expect(json["params"]?["seed"] == .integer(1))
    }

    @Test func aTwoSpeakerJobCarriesTheSecondAudioAndTheBoxes() throws {
        let boxes: [[Double]] = [[0, 0, 320, 480], [320, 0, 640, 480]]
        let request = EngineJobRequest(
            jobID: "j", imagePath: "/i", audioPath: "/a", audio2Path: "/a2", outputPath: "/o",
            parameters: JobParameters(seed: 1, ["speaker_boxes": .boxes(boxes)]))
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
        #expect(parsed.capabilities.parameters == nil, "an engine that declares no parameters")
        #expect(EngineEvent.parse(#"{"type":"ready","load_seconds":0.4}"#) == .ready(loadSeconds: 0.4))
        #expect(EngineEvent.parse(#"{"type":"heartbeat","seq":17,"active_jobs":[]}"#) == .heartbeat(seq: 17))
        let progress = EngineEvent.parse(
            #"{"type":"progress","job_id":"j","step":3,"steps":4,"fraction":0.5,"eta_seconds":null}"#)
        #expect(progress.jobID == "j")
        let error = EngineEvent.parse(
            #"{"type":"error","job_id":null,"code":"load_failed","message":"no file","retryable":false}"#)
        #expect(error == .error(EngineError(jobId: nil, code: "load_failed", message: "no file", retryable: false)))
    }

    @Test func aJobWithALiveStreamNamesItsFolder() throws {
        let request = EngineJobRequest(
            jobID: "j", imagePath: "/i", audioPath: "/a", outputPath: "/o", segmentsDirectory: "/data/live/j",
            parameters: JobParameters(seed: 1))
        let line = EngineCommand.job(request).encoded()
        #expect(try problems(line, definition: "job") == [])
        #expect(try JSONValue.parse(line)["segments_dir"] == .string("/data/live/j"))
        let without = EngineCommand.job(
            EngineJobRequest(
                jobID: "j", imagePath: "/i", audioPath: "/a", outputPath: "/o", parameters: JobParameters(seed: 1)))
        #expect(try JSONValue.parse(without.encoded())["segments_dir"] == nil, "left out, not null")
    }

    @Test func theSegmentEventIsParsed() throws {
        let line =
            #"{"type":"segment","job_id":"j","clip":2,"clips":3,"file":"clip-00002.m4s","init_file":"init.mp4","duration_seconds":4.0,"end_seconds":8.0}"#
        #expect(try problems(line, definition: "segment") == [])
        let expected = EngineSegment(
            jobId: "j", clip: 2, clips: 3, file: "clip-00002.m4s", initFile: "init.mp4", durationSeconds: 4,
            endSeconds: 8)
        #expect(EngineEvent.parse(line) == .segment(expected))
        #expect(EngineEvent.parse(line).jobID == "j")
        #expect(expected.hasProtocolNames)
        let unknownCount =
            #"{"type":"segment","job_id":"j","clip":1,"clips":null,"file":"clip-00001.m4s","init_file":"init.mp4","duration_seconds":3.24,"end_seconds":3.24}"#
        #expect(try problems(unknownCount, definition: "segment") == [])
        guard case .segment(let parsed) = EngineEvent.parse(unknownCount) else {
            Issue.record("segment not parsed")
            return
        }
        #expect(parsed.clips == nil)
    }

    @Test(arguments: ["../clip-00001.m4s", "clip-00001.m4s.part", "clip-1.m4s", "/etc/passwd", "clip-00001.mp4", ""])
    func aSegmentNamedOutsideTheProtocolIsRefused(file: String) {
        let segment = EngineSegment(
            jobId: "j", clip: 1, clips: nil, file: file, initFile: "init.mp4", durationSeconds: 4, endSeconds: 4)
        #expect(!segment.hasProtocolNames)
        var withBadInit = segment
        withBadInit.file = "clip-00001.m4s"
        withBadInit.initFile = "../init.mp4"
        #expect(!withBadInit.hasProtocolNames)
    }

    @Test func theHelloDeclaresTheJobParametersInOrder() throws {
        let hello =
            #"{"type":"hello","protocol_version":1,"engine":"x","engine_version":"1","capabilities":{"resolutions":["480p"],"fps":25,"max_concurrent_jobs":1,"device":"cpu","is_preview":true,"parameters":[{"name":"resolution","type":"string","description":"Size.","default":"480p","choices":["480p"]},{"name":"prompt","type":"string","default":null,"max_length":100},{"name":"speaker_boxes","type":"boxes","default":null,"count":2,"requires":"audio2_path"}]}}"#
        #expect(try problems(hello, definition: "hello") == [])
        guard case .hello(let parsed) = EngineEvent.parse(hello) else {
            Issue.record("hello not parsed")
            return
        }
        let parameters = try #require(parsed.capabilities.parameters)
        #expect(parameters.map(\.name) == ["resolution", "prompt", "speaker_boxes"])
        #expect(parameters[0].choices == [.string("480p")] && parameters[0].default == .string("480p"))
        #expect(parameters[1].maxLength == 100 && parameters[1].default == .null)
        #expect(parameters[2].count == 2 && parameters[2].requires == "audio2_path")
    }

    @Test func theFakeEnginesHelloFollowsTheSchema() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = TestSupport.fakeEngineCommand(["--never-ready", "--two-speakers"])
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()
        try process.run()
        defer { process.terminate() }
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), let first = byte.first, first != 10 {
            line.append(first)
        }
        #expect(try problems(String(decoding: line, as: UTF8.self), definition: "hello") == [])
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
