import Foundation
import Hummingbird
import Uploads

/// The engine's LoRA library: listed for everyone, added to by admins (any caller while auth is off, where the one
/// local user is the admin).
///
/// An upload is streamed to a temporary folder (size-capped by `--max-lora-bytes`), its safetensors header sniffed,
/// then handed to the engine, which checks every key and shape against the loaded model and only then copies it
/// into the library. The temporary copy is always removed; a refused file is never kept.
struct LoraController<Context: CallerContext>: Sendable {
    let jobs: JobController<Context>

    private var queue: JobQueue { jobs.queue }
    private var configuration: ServiceConfiguration { jobs.configuration }

    func addRoutes(to router: Router<Context>) {
        router.getAndHead("/api/loras", use: list)
        router.post("/api/loras", use: add)
        router.post("/api/loras/rescan", use: rescan)
    }

    // MARK: - GET /api/loras

    struct LoraLibrary: Encodable, Sendable {
        /// Whether the engine applies LoRAs (`loras` in a submit); `false` for the preview engine.
        let supported: Bool
        let loras: [EngineHello.LoraListing]
    }

    /// The engine's LoRA library as its hello listed it: name, size, rank, key style, targeted layers, and whether
    /// each fits the loaded model (if not, why).
    @Sendable func list(request: Request, context: Context) async throws -> JSONResponse<LoraLibrary> {
        let hello = await queue.engine.waitForHello(timeout: configuration.engine.helloTimeout)
        return JSONResponse(
            LoraLibrary(supported: hello?.capabilities.takesLoras ?? false, loras: hello?.capabilities.loras ?? []))
    }

    // MARK: - POST /api/loras

    /// Form: `file` (the `.safetensors` LoRA; `lora` is taken too) and optional `name` (default: the file's name
    /// without its extension).
    /// 201 with the new library entry.
    @Sendable func add(request: Request, context: Context) async throws -> JSONResponse<EngineHello.LoraListing> {
        try Self.checkAdmin(context.caller)
        guard
            await queue.engine.waitForHello(timeout: configuration.engine.helloTimeout)?.capabilities.takesLoras
                ?? false
        else { throw APIError.loraUnsupported }
        let uploadID = "lora-" + UUID().uuidString.lowercased()
        let folder = jobs.files.uploadFolder(for: uploadID)
        defer { jobs.files.removeUploads(of: uploadID) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let (path, name) = try await receive(request, into: folder)
        switch await queue.engine.addLora(name: name, path: path) {
        case .added(let listing):
            return JSONResponse(listing, status: .created)
        case .refused(let code, let message):
            throw APIError(Self.status(of: code), code: code, message: message, field: "file")
        }
    }

    /// Streams the upload into `folder` and checks its name and header: the file's path and the library name.
    private func receive(_ request: Request, into folder: String) async throws -> (path: String, name: String) {
        do {
            let upload = try await jobs.receiveUpload(request, into: folder, fileFields: FileField.loraFields)
            guard let file = upload.files["file"] ?? upload.files["lora"] else {
                throw UploadError.missingFile(.lora, field: "file")
            }
            let name = try Self.libraryName(field: upload.fields["name"], clientFilename: file.clientFilename)
            try SafetensorsHeader.check(fileAt: file.path, field: file.field)
            return (file.path, name)
        } catch {
            throw JobController<Context>.apiError(from: error)
        }
    }

    // MARK: - POST /api/loras/rescan

    /// Reads the library folder again (files copied in or removed by hand); answers with the library.
    @Sendable func rescan(request: Request, context: Context) async throws -> JSONResponse<LoraLibrary> {
        try Self.checkAdmin(context.caller)
        await queue.engine.rescanLoras()
        return try await list(request: request, context: context)
    }

    /// Changing the library is an admin's: with auth off, the one local user is.
    static func checkAdmin(_ caller: Caller) throws {
        guard caller.seesAllJobs else {
            throw APIError(.forbidden, code: "forbidden", message: "Changing the LoRA library needs an admin key.")
        }
    }

    /// The library name: `name`, else the uploaded file's name without `.safetensors`; letters, digits, `.`, `_`,
    /// `-`, at most 64, starting with a letter or digit (it becomes a file name in the library folder).
    static func libraryName(field: String?, clientFilename: String?) throws -> String {
        var name = field ?? ""
        if name.isEmpty, let clientFilename {
            name = (clientFilename as NSString).lastPathComponent
            if name.lowercased().hasSuffix(".safetensors") { name = String(name.dropLast(".safetensors".count)) }
        }
        guard !name.isEmpty else {
            throw APIError.invalidParameter("name", "Give the LoRA a `name` (or upload a file with a name).")
        }
        guard name.wholeMatch(of: #/[A-Za-z0-9][A-Za-z0-9._-]{0,63}/#) != nil else {
            throw APIError.invalidParameter(
                "name", "A LoRA name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
        }
        return name
    }

    /// The HTTP status of an engine's refusal.
    static func status(of code: String) -> HTTPResponse.Status {
        switch code {
        case "lora_exists": .conflict
        case "invalid_lora", "lora_unsupported": .unprocessableContent
        case "not_ready", "engine_unavailable": .serviceUnavailable
        default: .internalServerError
        }
    }
}

extension APIError {
    static let loraUnsupported = APIError(
        .unprocessableContent, code: "lora_unsupported",
        message: "This engine does not apply LoRAs (the preview engine); run the infinitetalk engine.")
}

/// The start of a safetensors file: an 8-byte little-endian header length, then that many bytes of JSON object.
/// Checked by the service before the engine reads the file, so that anything else is a quick 415.
enum SafetensorsHeader {
    /// Largest header accepted (safetensors' own limit is 100 MB).
    static let maxHeaderBytes = 100_000_000

    static func check(fileAt path: String, field: String) throws {
        let refusal = UploadError.unsupportedFormat(.lora, field: field, accepted: ["safetensors"])
        guard let handle = FileHandle(forReadingAtPath: path) else { throw refusal }
        defer { try? handle.close() }
        guard let prefix = try? handle.read(upToCount: 9), prefix.count == 9 else { throw refusal }
        let length = prefix.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard length >= 2, length <= maxHeaderBytes, 8 + length <= size, prefix.last == UInt8(ascii: "{") else {
            throw refusal
        }
    }
}
