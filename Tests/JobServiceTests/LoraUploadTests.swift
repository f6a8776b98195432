import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import JobService

/// `POST /api/loras`: an admin adds a LoRA to the engine's library. The service caps the size and sniffs the
/// safetensors header; the engine checks the keys against its model and only then keeps the file. Driven through a
/// real supervised engine process (the fake engine, whose library starts with `anime` and the misfit `big`).
@Suite struct LoraUploadTests {
    /// A safetensors file: its 8-byte header length, a JSON header, then `payload`.
    static func safetensors(payload: String = "weights") -> Data {
        let header = Data(#"{"__metadata__": {}}"#.utf8)
        var length = UInt64(header.count).littleEndian
        return Data(bytes: &length, count: 8) + header + Data(payload.utf8)
    }

    private func form(
        _ data: Data, filename: String = "style.safetensors", name: String? = nil, field: String = "file"
    ) -> MultipartForm {
        var form = MultipartForm()
        form.addFile(field, filename: filename, contentType: "application/octet-stream", data: data)
        if let name { form.addField("name", name) }
        return form
    }

    private func post(_ client: any TestClientProtocol, _ form: MultipartForm, as token: String? = nil)
        async throws -> TestResponse
    {
        var headers = form.headers
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await client.execute(uri: "/api/loras", method: .post, headers: headers, body: form.body)
    }

    /// A supervisor of the fake engine with a LoRA library (the service runs it).
    private static func libraryEngine() -> EngineSupervisor {
        let configuration = TestSupport.configuration(engine: TestSupport.fakeEngineCommand(["--loras", "anime,big"]))
        return EngineSupervisor(configuration: configuration.engine, logger: TestSupport.quietLogger)
    }

    private static func waitUntilReady(_ engine: EngineSupervisor) async {
        for await state in await engine.states() where state.hello != nil { break }
    }

    private func withService(
        settings: [String: String] = [:],
        _ body: @escaping @Sendable (InfiniteTalkService, any TestClientProtocol) async throws -> Void
    ) async throws {
        let engine = Self.libraryEngine()
        let service = try await buildApplication(
            TestSupport.configuration(engine: [], settings: settings), repository: MemoryJobRepository(),
            engine: engine, logger: TestSupport.quietLogger)
        try await service.application.test(.router) { client in
            await Self.waitUntilReady(engine)
            try await body(service, client)
        }
    }

    @Test func anAddedLoRAIsListedAndJobsMayNameItAtOnce() async throws {
        try await withService { service, client in
            let added = try await post(client, form(Self.safetensors()))
            #expect(added.status == .created, "\(added.json)")
            #expect(added.json["name"] == .string("style") && added.json["fits"] == .bool(true))
            let aliased = try await post(client, form(Self.safetensors(), name: "other", field: "lora"))
            #expect(aliased.status == .created, "the file may also come as `lora`")
            let library = try await client.execute(uri: "/api/loras", method: .get)
            let names = library.json["loras"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
            #expect(names == ["anime", "big", "style", "other"])
            let job = try MultipartForm.valid(fields: ["loras": #"[{"name": "style", "scale": 0.8}]"#])
            let submit = try await client.execute(
                uri: "/api/generate", method: .post, headers: job.headers, body: job.body)
            #expect(submit.status == .ok, "\(submit.json)")
            let uploads = try FileManager.default.contentsOfDirectory(atPath: service.configuration.uploadsDirectory)
            #expect(uploads.allSatisfy { !$0.hasPrefix("lora-") }, "the upload's temporary copy is gone")
        }
    }

    @Test func aLoRAIsRefusedWithItsOwnCodeAndNothingIsKept() async throws {
        try await withService(settings: ["max-lora-bytes": "1K"]) { service, client in
            let notSafetensors = try await post(client, form(Data("just some text, no header".utf8)))
            #expect(
                notSafetensors.status.code == 415 && notSafetensors.json.code == "unsupported_lora_format",
                "\(notSafetensors.json)")
            let misfit = try await post(client, form(Self.safetensors(payload: "misfit"), name: "odd"))
            #expect(misfit.status.code == 422 && misfit.json.code == "invalid_lora", "\(misfit.json)")
            #expect(misfit.json["error"]?["message"]?.stringValue?.contains("other shapes") == true)
            let taken = try await post(client, form(Self.safetensors(), name: "anime"))
            #expect(taken.status.code == 409 && taken.json.code == "lora_exists")
            let badName = try await post(client, form(Self.safetensors(), name: "../escape"))
            #expect(badName.status.code == 422 && badName.json["error"]?["field"] == .string("name"))
            let tooLarge = try await post(client, form(Self.safetensors(payload: String(repeating: "x", count: 2000))))
            #expect(tooLarge.status.code == 413 && tooLarge.json.code == "lora_too_large")
            var noFile = MultipartForm()
            noFile.addField("name", "nothing")
            let missing = try await post(client, noFile)
            #expect(missing.status.code == 422 && missing.json.code == "missing_lora")
            let library = try await client.execute(uri: "/api/loras", method: .get)
            #expect(library.json["loras"]?.arrayValue?.count == 2, "nothing was added")
            let uploads = try FileManager.default.contentsOfDirectory(atPath: service.configuration.uploadsDirectory)
            #expect(uploads.isEmpty)
        }
    }

    @Test func onlyAnAdminMayAddALoRAWhenAccountsExist() async throws {
        let engine = Self.libraryEngine()
        try await AuthTestApp.run(engine: engine) { _, client, keys in
            await Self.waitUntilReady(engine)
            let user = try await post(client, form(Self.safetensors()), as: keys.alice)
            #expect(user.status == .forbidden && user.json.code == "forbidden")
            let nobody = try await post(client, form(Self.safetensors()))
            #expect(nobody.status == .unauthorized)
            let admin = try await post(client, form(Self.safetensors()), as: keys.admin)
            #expect(admin.status == .created, "\(admin.json)")
            let rescanByUser = try await client.execute(
                uri: "/api/loras/rescan", method: .post, headers: AuthTestApp.bearer(keys.alice))
            #expect(rescanByUser.status == .forbidden)
            let rescan = try await client.execute(
                uri: "/api/loras/rescan", method: .post, headers: AuthTestApp.bearer(keys.admin))
            #expect(rescan.status == .ok && rescan.json["loras"]?.arrayValue?.count == 3)
        }
    }

    @Test func anEngineWithoutALibraryRefusesUploads() async throws {
        let service = try await buildApplication(
            TestSupport.configuration(engine: []), repository: MemoryJobRepository(),
            engine: SilentEngine(hello: TestSupport.fakeEngineHello, ready: true), logger: TestSupport.quietLogger)
        try await service.application.test(.router) { client in
            let answer = try await post(client, form(Self.safetensors()))
            #expect(answer.status.code == 422 && answer.json.code == "lora_unsupported")
        }
    }
}

extension JSONValue {
    /// The error response's `error.code`.
    fileprivate var code: String? { self["error"]?["code"]?.stringValue }
}
