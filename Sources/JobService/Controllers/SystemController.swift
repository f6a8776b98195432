import Foundation
import Hummingbird

/// Health, readiness, metrics, the OpenAPI document and the client configuration.
struct SystemController<Context: RequestContext>: Sendable {
    let queue: JobQueue
    let configuration: ServiceConfiguration

    func addRoutes(to router: Router<Context>) {
        router.getAndHead("/healthz", use: health)
        router.getAndHead("/readyz", use: readiness)
        router.getAndHead("/metrics", use: prometheus)
        router.getAndHead("/openapi.json", use: openAPI)
        router.getAndHead("/api/config", use: clientConfiguration)
    }

    struct Health: Encodable, Sendable { let status: String }

    @Sendable func health(request: Request, context: Context) async throws -> JSONResponse<Health> {
        JSONResponse(Health(status: "ok"))
    }

    /// The engine as clients see it.
    struct EngineSummary: Encodable, Sendable {
        let name: String
        @NullEncoded var version: String?
        @NullEncoded var isPreview: Bool?
        let ready: Bool
        @NullEncoded var device: String?
        /// Whether jobs may have a second speaker (`audio2`).
        @NullEncoded var twoSpeakers: Bool?
        /// The engine's memory profile (`resident`, `fp8`); `null` for the preview engine.
        @NullEncoded var memoryProfile: String?
        /// Whether jobs may name LoRAs of the library (`loras`, `GET /api/loras`); `null` before the engine's hello.
        @NullEncoded var supportsLoras: Bool?
        /// Each engine process (several with `--gpus`).
        let instances: [Instance]

        struct Instance: Encodable, Sendable {
            let index: Int
            @NullEncoded var gpu: String?
            /// `starting`, `ready`, `unavailable` or `stopped`.
            let state: String
            @NullEncoded var reason: String?
            @NullEncoded var slots: Int?
            let restarts: Int
            @NullEncoded var runningJobs: Int?

            init(_ status: EngineInstanceStatus) {
                index = status.index
                gpu = status.gpu
                state = status.state.name
                if case .unavailable(let reason) = status.state { self.reason = reason }
                slots = status.slots
                restarts = status.restarts
                runningJobs = status.runningJobs
            }
        }
    }

    private func engineSummary() async -> EngineSummary {
        let hello = await queue.engine.lastHello
        let ready = await queue.engine.state.hello != nil
        return EngineSummary(
            name: hello?.engine ?? configuration.engine.name, version: hello?.engineVersion,
            isPreview: hello?.capabilities.isPreview, ready: ready, device: hello?.capabilities.device,
            twoSpeakers: hello?.capabilities.twoSpeakers, memoryProfile: hello?.capabilities.memoryProfile,
            supportsLoras: hello?.capabilities.takesLoras,
            instances: await queue.engine.statuses().map(EngineSummary.Instance.init))
    }

    struct Readiness: Encodable, Sendable {
        let status: String
        let reason: String?
        let engine: EngineSummary
    }

    @Sendable func readiness(request: Request, context: Context) async throws -> JSONResponse<Readiness> {
        let engine = await engineSummary()
        if queue.isDraining {
            return JSONResponse(
                Readiness(status: "unavailable", reason: "shutting down", engine: engine),
                status: .serviceUnavailable)
        }
        if let shortage = queue.diskWatermark.shortage() {
            return JSONResponse(
                Readiness(status: "unavailable", reason: shortage, engine: engine), status: .serviceUnavailable)
        }
        switch await queue.engine.state {
        case .ready:
            return JSONResponse(Readiness(status: "ready", reason: nil, engine: engine))
        case .starting:
            return JSONResponse(
                Readiness(status: "starting", reason: "the engine is loading", engine: engine),
                status: .serviceUnavailable)
        case .unavailable(let reason):
            return JSONResponse(
                Readiness(status: "unavailable", reason: reason, engine: engine),
                status: .serviceUnavailable)
        case .stopped:
            return JSONResponse(
                Readiness(status: "unavailable", reason: "the engine stopped", engine: engine),
                status: .serviceUnavailable)
        }
    }

    @Sendable func prometheus(request: Request, context: Context) async throws -> Response {
        let text = try await queue.renderMetrics()
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    @Sendable func openAPI(request: Request, context: Context) async throws -> Response {
        guard let document = OpenAPIDocument.data else {
            throw APIError(.internalServerError, code: "internal", message: "The OpenAPI document is missing.")
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: document)))
    }

    // MARK: - GET /api/config

    struct ClientConfiguration: Encodable, Sendable {
        struct Limits: Encodable, Sendable {
            let maxImageBytes: Int
            let maxAudioBytes: Int
            /// Largest LoRA upload (`POST /api/loras`).
            let maxLoraBytes: Int
            let maxImageWidth: Int
            let maxImageHeight: Int
            let minImageSide: Int
            let minAudioSeconds: Double
            let maxAudioSeconds: Double
            let maxQueueSize: Int
            let maxPromptLength: Int
        }
        struct Steps: Encodable, Sendable {
            let `default`: Int
            let min: Int
            let max: Int
        }
        struct Defaults: Encodable, Sendable {
            let resolution: String
            let steps: Int
            let prompt: String
        }

        let limits: Limits
        /// The job parameters (the engine's schema with the service's limits), in form order; empty before the
        /// engine's first hello.
        let parameters: [ParameterSpec]
        let maxConcurrent: Int
        let imageFormats: [String]
        let audioFormats: [String]
        let imageMimeTypes: [String]
        let audioMimeTypes: [String]
        let resolutions: [String]
        let fps: Int
        let steps: Steps
        let defaults: Defaults
        let engine: EngineSummary
        /// Whether API keys are required (the page then asks for one).
        let auth: Auth
        struct Auth: Encodable, Sendable {
            let enabled: Bool
        }
    }

    @Sendable func clientConfiguration(request: Request, context: Context) async throws -> JSONResponse<
        ClientConfiguration
    > {
        let limits = configuration.uploadLimits
        let hello = await queue.engine.waitForHello(timeout: configuration.engine.helloTimeout)
        let schema = hello.map { ParameterSchema(hello: $0, configuration: configuration) }
        let resolution = schema?.spec(named: "resolution")
        let steps = schema?.spec(named: "steps")
        let defaultSteps = steps?.default.intValue ?? PreHelloDefaults.steps
        return JSONResponse(
            ClientConfiguration(
                limits: .init(
                    maxImageBytes: limits.maxImageBytes, maxAudioBytes: limits.maxAudioBytes,
                    maxLoraBytes: limits.maxLoraBytes, maxImageWidth: limits.maxImageWidth,
                    maxImageHeight: limits.maxImageHeight,
                    minImageSide: limits.minImageSide, minAudioSeconds: limits.minAudioSeconds,
                    maxAudioSeconds: limits.maxAudioSeconds, maxQueueSize: configuration.maxQueueSize,
                    maxPromptLength: configuration.maxPromptLength),
                parameters: schema?.parameters ?? [],
                maxConcurrent: await queue.capacity(),
                imageFormats: ["jpeg", "png", "webp"],
                audioFormats: ["wav", "mp3", "m4a", "ogg", "flac"],
                imageMimeTypes: ["image/jpeg", "image/png", "image/webp"],
                audioMimeTypes: [
                    "audio/wav", "audio/x-wav", "audio/mpeg", "audio/mp4", "audio/aac", "audio/x-m4a",
                    "audio/ogg", "audio/flac", "audio/x-flac",
                ],
                resolutions: resolution?.choices?.compactMap(\.stringValue) ?? PreHelloDefaults.resolutions,
                fps: hello?.capabilities.fps ?? PreHelloDefaults.fps,
                steps: .init(
                    default: defaultSteps, min: steps?.minimum.map { Int($0) } ?? 1,
                    max: steps?.maximum.map { Int($0) } ?? configuration.maxSteps),
                defaults: .init(
                    resolution: resolution?.default.stringValue ?? PreHelloDefaults.resolutions[0],
                    steps: defaultSteps,
                    prompt: schema?.spec(named: "prompt")?.default.stringValue ?? PreHelloDefaults.prompt),
                engine: await engineSummary(), auth: .init(enabled: configuration.authEnabled)))
    }
}

/// What `GET /api/config`'s older fields say before any engine said hello (or for an engine that does not
/// declare these parameters); `parameters` is then empty and jobs are refused (503 `engine_unavailable`).
private enum PreHelloDefaults {
    static let resolutions = ["480p", "720p"]
    static let steps = 4
    static let fps = 25
    static let prompt = "A person is talking."
}

/// The OpenAPI 3.1 document shipped as a resource (`Resources/openapi.json`).
enum OpenAPIDocument {
    static let data: Data? = Bundle.module.url(forResource: "openapi", withExtension: "json")
        .flatMap { try? Data(contentsOf: $0) }
}
