import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import JobService

/// The `loras` job option: up to three LoRAs of the engine's library, each with a scale; an unknown one is 422
/// `unknown_lora`, one that does not fit the model 422 `invalid_lora` with the engine's reason, and an engine
/// without LoRAs (the preview) answers 422 `lora_unsupported`.
@Suite struct LoraParameterTests {
    private let schema = ParameterSchema(
        engine: ParameterSchemaTests.engineParameters + [
            ParameterSpec(
                name: "loras", type: "loras", choices: [.string("anime"), .string("big")], minimum: 0, maximum: 2,
                count: 3)
        ],
        maxSteps: 20, maxPromptLength: 100, loraProblems: ["big": "40 of 40 targets have other shapes"])

    private func code(_ text: String, in schema: ParameterSchema? = nil) -> String? {
        do {
            _ = try (schema ?? self.schema).parse(fields: ["loras": text], randomSeed: { _ in 1 })
            return nil
        } catch let error as APIError {
            return error.code
        } catch {
            return "\(error)"
        }
    }

    @Test func loRAsOfTheLibraryAreSentWithTheirScales() throws {
        let parameters = try schema.parse(
            fields: ["loras": #"[{"name": "anime", "scale": 0.6}, {"name": "anime"}]"#], randomSeed: { _ in 1 })
        #expect(
            parameters.values["loras"]
                == .list([
                    .object(["name": .string("anime"), "scale": .number(0.6)]),
                    .object(["name": .string("anime"), "scale": .number(1)]),
                ]))
        let none = try schema.parse(fields: [:], randomSeed: { _ in 1 })
        #expect(none.values["loras"] == .null)
    }

    @Test func wrongLoRAsAreRefusedWithTheirOwnCodes() {
        #expect(code(#"[{"name": "nope"}]"#) == "unknown_lora")
        #expect(code(#"[{"name": "big"}]"#) == "invalid_lora")
        #expect(code(#"[{"name": "anime", "scale": 2.5}]"#) == "invalid_parameter")
        #expect(
            code(String(repeating: #"{"name": "anime"},"#, count: 4).dropLast().description.wrapped)
                == "invalid_parameter")
        #expect(code("anime") == "invalid_parameter")
        let preview = ParameterSchema(engine: ParameterSchemaTests.engineParameters, maxSteps: 20, maxPromptLength: 100)
        #expect(code(#"[{"name": "anime"}]"#, in: preview) == "lora_unsupported")
    }
}

extension LoraParameterTests {
    private static func hello(withLibrary: Bool) -> EngineHello {
        let loras = #"""
            , "loras": [{"name": "anime", "size_bytes": 1000, "rank": 16, "style": "kijai", "targets": 400,
                         "modules": ["self_attn.q"], "fits": true, "reason": null}],
            "parameters": [{"name": "loras", "type": "loras", "description": "", "default": null,
                            "choices": ["anime"], "minimum": 0, "maximum": 2, "count": 3}]
            """#
        let line = #"""
            {"type": "hello", "protocol_version": 1, "engine": "test", "engine_version": "1",
             "capabilities": {"resolutions": ["480p"], "fps": 25, "max_concurrent_jobs": 1, "device": "cpu",
                              "is_preview": false \#(withLibrary ? loras : "")}}
            """#.replacingOccurrences(of: "\n", with: " ")
        guard case .hello(let hello) = EngineEvent.parse(line) else { fatalError("not a hello: \(line)") }
        return hello
    }

    @Test(arguments: [true, false])
    func theLibraryIsListedAndTheConfigSaysWhetherLoRAsApply(withLibrary: Bool) async throws {
        let service = try await buildApplication(
            TestSupport.configuration(engine: []), repository: MemoryJobRepository(),
            engine: SilentEngine(hello: Self.hello(withLibrary: withLibrary), ready: true),
            logger: TestSupport.quietLogger)
        try await service.application.test(.router) { client in
            let library = try await client.execute(uri: "/api/loras", method: .get)
            #expect(library.json["supported"] == .bool(withLibrary))
            #expect(library.json["loras"]?.arrayValue?.count == (withLibrary ? 1 : 0))
            if withLibrary { #expect(library.json["loras"]?.arrayValue?.first?["fits"] == .bool(true)) }
            let config = try await client.execute(uri: "/api/config", method: .get)
            #expect(config.json["engine"]?["supports_loras"] == .bool(withLibrary))
        }
    }
}

extension String {
    fileprivate var wrapped: String { "[\(self)]" }
}
