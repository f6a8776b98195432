/// A job's live stream so far, in its current attempt: the init segment and one media segment per finished clip, as
/// the engine reported them (`segment` events). Only the files named here are served; a new attempt starts without
/// one (`Job.start(now:)`).
public struct LiveStream: Codable, Sendable, Equatable {
    /// One finished clip's media segment.
    public struct Segment: Codable, Sendable, Equatable {
        public var clip: Int
        public var file: String
        /// The segment's video length (its `#EXTINF`).
        public var durationSeconds: Double
        /// The video available once this segment is.
        public var endSeconds: Double
    }

    /// The initialisation segment (`init.mp4`).
    public var initFile: String
    /// How many clips the job will have, as last reported; `nil` when the engine cannot tell.
    public var clips: Int?
    /// In clip order.
    public var segments: [Segment]

    /// The stream after the first segment.
    init(first segment: EngineSegment) {
        initFile = segment.initFile
        clips = segment.clips
        segments = [Segment(segment)]
    }

    /// Adds the next clip's segment; one that is not after the last (a repeat) is refused.
    /// - Returns: whether it was added.
    mutating func append(_ segment: EngineSegment) -> Bool {
        guard segment.clip > (segments.last?.clip ?? 0) else { return false }
        clips = segment.clips
        segments.append(Segment(segment))
        return true
    }

    /// Whether `name` is one of the stream's files: only those are served, so no other name reaches the disk.
    func contains(file name: String) -> Bool {
        name == initFile || segments.contains { $0.file == name }
    }

    /// The video available so far, in seconds.
    var endSeconds: Double { segments.last?.endSeconds ?? 0 }

    /// Where clients read the stream of the job with `id`.
    static func playlistURL(for id: String) -> String { "/api/result/\(id)/live.m3u8" }
}

extension LiveStream.Segment {
    init(_ segment: EngineSegment) {
        self.init(
            clip: segment.clip, file: segment.file, durationSeconds: segment.durationSeconds,
            endSeconds: segment.endSeconds)
    }
}

extension Job {
    /// Records a finished clip's segment of the running attempt.
    /// - Returns: whether it was recorded (a repeated or out-of-order clip is not).
    mutating func recordSegment(_ segment: EngineSegment) -> Bool {
        guard var stream = live else {
            live = LiveStream(first: segment)
            return true
        }
        guard stream.append(segment) else { return false }
        live = stream
        return true
    }
}
