/// Audio files whose headers claim a shorter length than they decode to, built from real encodes.
enum LyingAudio {
    /// A `seconds`-long Vorbis stream followed by a 2 s one in the same file (a chained Ogg): ffprobe reports
    /// the last stream's 2 s, every decoder plays both.
    static func chainedOgg(seconds: Double, in directory: TemporaryDirectory) async throws -> String {
        let first = try await TestMedia.makeTone(
            seconds: seconds, name: "first.ogg", codecArguments: ["-c:a", "libvorbis"], in: directory)
        let second = try await TestMedia.makeTone(
            seconds: 2, name: "second.ogg", codecArguments: ["-c:a", "libvorbis"], in: directory)
        return try directory.write(try fileBytes(first) + fileBytes(second), to: "chained.ogg")
    }

    /// A `seconds`-long FLAC whose STREAMINFO claims 2 s of samples.
    static func flac(seconds: Double, in directory: TemporaryDirectory) async throws -> String {
        let path = try await TestMedia.makeTone(
            seconds: seconds, name: "honest.flac", codecArguments: ["-c:a", "flac"], in: directory)
        var bytes = try fileBytes(path)
        // "fLaC", a 4-byte block header, then STREAMINFO; its 36-bit total sample count starts in the low nibble
        // of byte 21 and fills bytes 22...25.
        let claimed = 2 * 44_100
        bytes[21] &= 0xF0
        bytes.replaceSubrange(22..<26, with: bigEndian32(claimed))
        return try directory.write(bytes, to: "lying.flac")
    }

    /// A `seconds`-long MP3 whose Xing tag claims 77 frames (2 s at 44.1 kHz).
    static func mp3(seconds: Double, in directory: TemporaryDirectory) async throws -> String {
        let path = try await TestMedia.makeTone(
            seconds: seconds, name: "honest.mp3", codecArguments: ["-c:a", "libmp3lame"], in: directory)
        var bytes = try fileBytes(path)
        // The tag ("Xing" or "Info"), 4 bytes of flags (bit 0: a frame count follows), the frame count.
        let tag = (0..<min(bytes.count, 4096) - 12).first {
            bytes[$0..<$0 + 4].elementsEqual("Xing".utf8) || bytes[$0..<$0 + 4].elementsEqual("Info".utf8)
        }
        guard let tag, bytes[tag + 7] & 1 == 1 else { throw TestMedia.MediaToolError(message: "no Xing frame count") }
        bytes.replaceSubrange(tag + 8..<tag + 12, with: bigEndian32(77))
        return try directory.write(bytes, to: "lying.mp3")
    }

    private static func bigEndian32(_ value: Int) -> [UInt8] {
        [UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
}
