import Foundation

/// Messages of the engine protocol (`docs/engine-protocol.md`), one JSON object per line, grouped by direction.

// MARK: - Engine → service

/// What the engine says about itself in `hello`.
public struct EngineHello: Codable, Sendable, Equatable {
    public struct Capabilities: Codable, Sendable, Equatable {
        /// The job parameters the engine takes (`ParameterSchema`); `resolutions`, `defaultSteps`, `maxSteps` and
        /// `twoSpeakers` are derived from them by the engine. Absent (an older engine): it takes no options.
        public var parameters: [ParameterSpec]?
        public var resolutions: [String]
        public var fps: Int
        public var maxConcurrentJobs: Int
        public var device: String
        public var isPreview: Bool
        public var twoSpeakers: Bool?
        public var defaultSteps: Int?
        public var maxSteps: Int?
        /// How the model's weights sit in GPU memory (`resident`, `fp8`); absent for engines without a model.
        public var memoryProfile: String?
        /// The LoRA library (engines that take `loras`).
        public var loras: [LoraListing]?

        /// Whether jobs may name LoRAs of the library: the engine declares the `loras` parameter.
        public var takesLoras: Bool { parameters?.contains { $0.name == "loras" } ?? false }
    }

    /// One file of the engine's LoRA library, as its hello lists it.
    public struct LoraListing: Codable, Sendable, Equatable {
        public var name: String
        public var sizeBytes: Int
        public var rank: Int
        public var style: String
        public var targets: Int
        public var modules: [String]
        public var fits: Bool
        public var reason: String?
    }

    public var protocolVersion: Int
    public var engine: String
    public var engineVersion: String
    public var capabilities: Capabilities
}

public struct EngineStage: Codable, Sendable, Equatable {
    public var jobId: String
    public var stage: String
    public var message: String
    public var clip: Int?
    public var clips: Int?
}

public struct EngineProgress: Codable, Sendable, Equatable {
    public var jobId: String
    public var step: Int?
    public var steps: Int?
    public var clip: Int?
    public var clips: Int?
    public var fraction: Double
    public var etaSeconds: Double?
}

/// A clip's live segment is complete in the job's `segments_dir` (after `initFile`, before the first).
public struct EngineSegment: Codable, Sendable, Equatable {
    public var jobId: String
    /// 1-based, in order.
    public var clip: Int
    /// How many clips the job will have; `nil` when the engine cannot tell.
    public var clips: Int?
    /// `clip-00001.m4s`, ...
    public var file: String
    /// `init.mp4`.
    public var initFile: String
    /// This segment's video length (its `#EXTINF`).
    public var durationSeconds: Double
    /// The video available so far.
    public var endSeconds: Double

    /// Whether the names are the ones the protocol allows: the service joins them to a folder path, so nothing
    /// else (`../x`, `a/b`, `x.part`) may pass.
    public var hasProtocolNames: Bool {
        initFile == "init.mp4" && file.wholeMatch(of: #/clip-[0-9]{5}\.m4s/#) != nil
    }
}

public struct EngineDone: Codable, Sendable, Equatable {
    public var jobId: String
    public var outputPath: String
    public var frames: Int
    public var durationSeconds: Double
    public var fps: Int
    public var width: Int
    public var height: Int
    public var seconds: Double?
    public var warnings: [String]?
}

public struct EngineError: Codable, Sendable, Equatable {
    public var jobId: String?
    public var code: String
    public var message: String
    public var retryable: Bool?
}

/// One line read from the engine.
public enum EngineEvent: Sendable, Equatable {
    case hello(EngineHello)
    case ready(loadSeconds: Double)
    case stage(EngineStage)
    case progress(EngineProgress)
    case segment(EngineSegment)
    case done(EngineDone)
    case error(EngineError)
    case heartbeat(seq: Int)
    case bye
    /// The answer to `add_lora`: the file is in the library (a new `hello` listing it came first).
    case loraAdded(requestID: String, lora: EngineHello.LoraListing)
    /// The answer to `add_lora`: nothing was added.
    case loraRefused(requestID: String, code: String, message: String)
    /// A line that is not a protocol message we know (kept for the log).
    case unreadable(line: String, reason: String)

    /// The protocol version this service speaks.
    public static let protocolVersion = 1

    /// Parses one line. Never throws: anything unusable becomes `.unreadable`.
    public static func parse(_ line: String) -> EngineEvent {
        let data = Data(line.utf8)
        struct Envelope: Decodable { let type: String }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        guard let envelope = try? decoder.decode(Envelope.self, from: data) else {
            return .unreadable(line: line, reason: "not a JSON object with a `type`")
        }
        do {
            switch envelope.type {
            case "hello": return .hello(try decoder.decode(EngineHello.self, from: data))
            case "ready":
                struct Ready: Decodable { let loadSeconds: Double? }
                return .ready(loadSeconds: try decoder.decode(Ready.self, from: data).loadSeconds ?? 0)
            case "stage": return .stage(try decoder.decode(EngineStage.self, from: data))
            case "progress": return .progress(try decoder.decode(EngineProgress.self, from: data))
            case "segment": return .segment(try decoder.decode(EngineSegment.self, from: data))
            case "done": return .done(try decoder.decode(EngineDone.self, from: data))
            case "error": return .error(try decoder.decode(EngineError.self, from: data))
            case "heartbeat":
                struct Beat: Decodable { let seq: Int }
                return .heartbeat(seq: try decoder.decode(Beat.self, from: data).seq)
            case "bye": return .bye
            case "lora_added":
                struct Added: Decodable {
                    let requestId: String
                    let lora: EngineHello.LoraListing
                }
                let added = try decoder.decode(Added.self, from: data)
                return .loraAdded(requestID: added.requestId, lora: added.lora)
            case "lora_refused":
                struct Refused: Decodable {
                    let requestId: String
                    let code: String
                    let message: String
                }
                let refused = try decoder.decode(Refused.self, from: data)
                return .loraRefused(requestID: refused.requestId, code: refused.code, message: refused.message)
            default: return .unreadable(line: line, reason: "unknown type `\(envelope.type)`")
            }
        } catch {
            return .unreadable(line: line, reason: "bad `\(envelope.type)` message: \(error)")
        }
    }

    /// The job this event is about, if any.
    public var jobID: String? {
        switch self {
        case .stage(let stage): stage.jobId
        case .progress(let progress): progress.jobId
        case .segment(let segment): segment.jobId
        case .done(let done): done.jobId
        case .error(let error): error.jobId
        default: nil
        }
    }
}

// MARK: - Service → engine

/// One line written to the engine.
public enum EngineCommand: Sendable, Equatable {
    case job(EngineJobRequest)
    case cancel(jobID: String)
    case heartbeat(seq: Int)
    case shutdown
    /// Check the LoRA file at `path` and copy it into the library as `name` (answered by `lora_added` or
    /// `lora_refused` with `requestID`).
    case addLora(requestID: String, name: String, path: String)
    /// Read the LoRA library folder again (answered by a new `hello`).
    case rescan

    /// The JSON line, without the newline.
    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data: Data?
        switch self {
        case .job(let request):
            data = try? encoder.encode(request)
        case .cancel(let jobID):
            data = try? encoder.encode(["type": "cancel", "job_id": jobID])
        case .heartbeat(let seq):
            struct Beat: Encodable {
                let type = "heartbeat"
                let seq: Int
            }
            data = try? encoder.encode(Beat(seq: seq))
        case .shutdown:
            data = try? encoder.encode(["type": "shutdown"])
        case .addLora(let requestID, let name, let path):
            data = try? encoder.encode(["type": "add_lora", "request_id": requestID, "name": name, "path": path])
        case .rescan:
            data = try? encoder.encode(["type": "rescan"])
        }
        return String(decoding: data ?? Data(), as: UTF8.self)
    }
}

/// The `job` message: files and options of one job. `params` are the job's stored parameters as they are (no
/// field-by-field copy), plus the service-provided file of a `path` parameter (`audio2_path`).
public struct EngineJobRequest: Encodable, Sendable, Equatable {
    public let type = "job"
    public var jobId: String
    public var imagePath: String
    public var audioPath: String
    public var outputPath: String
    /// Where the engine writes the live stream (`init.mp4`, `clip-NNNNN.m4s`); `nil`: no live stream.
    public var segmentsDir: String?
    public var params: JobParameters

    public init(
        jobID: String, imagePath: String, audioPath: String, audio2Path: String? = nil, outputPath: String,
        segmentsDirectory: String? = nil, parameters: JobParameters
    ) {
        self.jobId = jobID
        self.imagePath = imagePath
        self.audioPath = audioPath
        self.outputPath = outputPath
        self.segmentsDir = segmentsDirectory
        self.params = parameters
        if let audio2Path { self.params.values["audio2_path"] = .string(audio2Path) }
    }

    enum CodingKeys: String, CodingKey {
        case type, jobId, imagePath, audioPath, outputPath, segmentsDir, params
    }
}
