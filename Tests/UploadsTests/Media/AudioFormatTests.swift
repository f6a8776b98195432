import Testing

@testable import Uploads

@Suite("Audio formats are sniffed from the bytes")
struct AudioFormatTests {
    /// Every container we accept, as ffmpeg writes it: (file name, codec arguments, expected format).
    static let encodings: [(String, [String], AudioFormat)] = [
        ("tone.wav", ["-c:a", "pcm_s16le"], .wav),
        ("tone.mp3", ["-c:a", "libmp3lame"], .mp3),
        ("bare.mp3", ["-c:a", "libmp3lame", "-write_xing", "0", "-id3v2_version", "0"], .mp3),
        ("tone.m4a", ["-c:a", "aac"], .m4a),
        ("tone.mp4", ["-c:a", "aac", "-f", "mp4"], .m4a),
        ("tone.aac", ["-c:a", "aac", "-f", "adts"], .aac),
        ("vorbis.ogg", ["-c:a", "libvorbis"], .ogg),
        ("opus.ogg", ["-c:a", "libopus"], .ogg),
        ("tone.flac", ["-c:a", "flac"], .flac),
    ]

    @Test("every accepted container is recognised", arguments: encodings)
    func encodedTones(name: String, codecArguments: [String], expected: AudioFormat) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try await TestMedia.makeTone(seconds: 1, name: name, codecArguments: codecArguments, in: directory)

        #expect(AudioFormat.sniff(try fileBytes(path).prefix(AudioFormat.sniffLength)) == expected)
    }

    @Test("an MP3 without an ID3 tag starts with a frame sync, not ID3")
    func bareMP3StartsWithFrameSync() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try await TestMedia.makeTone(
            seconds: 1, name: "bare.mp3",
            codecArguments: ["-c:a", "libmp3lame", "-id3v2_version", "0"],
            in: directory)

        let bytes = try fileBytes(path)
        #expect(bytes[0] == 0xFF && !bytes.starts(with: Array("ID3".utf8)))
        #expect(AudioFormat.sniff(bytes) == .mp3)
    }

    @Test("the shared speech is a WAV")
    func sharedSpeech() throws {
        #expect(AudioFormat.sniff(try fileBytes(TestMedia.sharedSpeechPath)) == .wav)
    }

    @Test(
        "other bytes are not audio",
        arguments: [
            ("PNG", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
            ("WebP", Array("RIFF\u{24}\u{0}\u{0}\u{0}WEBPVP8 ".utf8)),
            ("video-only brand", [0, 0, 0, 16] + Array("ftypheic\u{0}\u{0}\u{0}\u{0}".utf8)),
            ("0xFF then garbage", [0xFF, 0x00, 0x12, 0x34]),
            ("MPEG sync with a bad bitrate index", [0xFF, 0xFB, 0xF0, 0x00]),
            ("text", Array("hello world".utf8)),
            ("nothing", []),
        ] as [(String, [UInt8])])
    func notAudio(_ description: String, bytes: [UInt8]) {
        #expect(AudioFormat.sniff(bytes) == nil)
    }
}
