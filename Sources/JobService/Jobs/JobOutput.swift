/// What a finished job produced, as reported by the engine's `done` (plus the file size).
public struct JobOutput: Codable, Sendable, Equatable {
    public var durationSeconds: Double
    public var frames: Int
    public var width: Int
    public var height: Int
    public var fps: Int
    public var bytes: Int
    public var warnings: [String]

    public init(durationSeconds: Double, frames: Int, width: Int, height: Int, fps: Int, bytes: Int, warnings: [String])
    {
        self.durationSeconds = durationSeconds
        self.frames = frames
        self.width = width
        self.height = height
        self.fps = fps
        self.bytes = bytes
        self.warnings = warnings
    }
}

/// Why a job failed or was cancelled: a stable `code` (engine codes such as `bad_audio`, or the service's
/// `engine_crashed`, `engine_timeout`, `interrupted`, `cancelled`) and a message for people.
public struct JobFailure: Codable, Sendable, Equatable, Error {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public static func cancelled() -> JobFailure { JobFailure(code: "cancelled", message: "Cancelled by the client") }

    /// The disk is full: the job's result or its state could not be written.
    public static let diskFull = JobFailure(
        code: "disk_full", message: "The disk is full: the job's result or state could not be written")
}
