import Foundation

/// A job's live stream as an HLS media playlist of type EVENT (RFC 8216): the init segment (`#EXT-X-MAP`), one
/// `#EXTINF` per ready clip, and `#EXT-X-ENDLIST` once the job has ended (completed, failed or cancelled: no clip
/// will follow). URIs are relative to the playlist (`/api/result/{id}/live.m3u8` → `/api/result/{id}/live/…`).
struct LivePlaylist {
    let stream: LiveStream
    let ended: Bool

    var text: String {
        // Every #EXTINF rounded to the nearest second must fit in the target duration (RFC 8216 §4.3.3.1).
        let longest = stream.segments.map(\.durationSeconds).max() ?? 0
        var lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            "#EXT-X-TARGETDURATION:\(max(1, Int(longest.rounded(.up))))",
            "#EXT-X-PLAYLIST-TYPE:EVENT",
            "#EXT-X-INDEPENDENT-SEGMENTS",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-MAP:URI=\"live/\(stream.initFile)\"",
        ]
        for segment in stream.segments {
            lines.append("#EXTINF:\(String(format: "%.3f", segment.durationSeconds)),")
            lines.append("live/\(segment.file)")
        }
        if ended { lines.append("#EXT-X-ENDLIST") }
        return lines.joined(separator: "\n") + "\n"
    }
}
