import Foundation
import Testing

@testable import Uploads

@Suite("UploadValidator accepts audio only within its limits (its decoded length, measured with ffmpeg)")
struct AudioValidationTests {
    let validator = UploadValidator()

    @Test(
        "every accepted container is decoded to the duration it was made with",
        arguments: AudioFormatTests.encodings)
    func encodedTones(name: String, codecArguments: [String], expected: AudioFormat) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try await TestMedia.makeTone(seconds: 2, name: name, codecArguments: codecArguments, in: directory)

        let info = try await validator.validateAudio(at: path)

        #expect(info.format == expected)
        // Encoders add priming samples and frame padding: tens of milliseconds.
        #expect(abs(info.durationSeconds - 2) < 0.1)
    }

    @Test("the shared speech is accepted with the duration ffprobe reads from its honest header")
    func sharedSpeech() async throws {
        let expected = try await TestMedia.ffprobeDuration(of: TestMedia.sharedSpeechPath)

        let info = try await validator.validateAudio(at: TestMedia.sharedSpeechPath)

        #expect(info.format == .wav)
        #expect(abs(info.durationSeconds - expected) < 0.01)
    }

    @Test(
        "a header that claims 2 s does not hide the decoded length",
        arguments: ["chained Ogg", "FLAC STREAMINFO", "MP3 Xing tag"])
    func lyingHeaders(kind: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path =
            switch kind {
            case "chained Ogg": try await LyingAudio.chainedOgg(seconds: 12, in: directory)
            case "FLAC STREAMINFO": try await LyingAudio.flac(seconds: 14, in: directory)
            default: try await LyingAudio.mp3(seconds: 14, in: directory)
            }
        let strict = UploadValidator(limits: UploadLimits(maxAudioSeconds: 10))
        #expect(abs(try await TestMedia.ffprobeDuration(of: path) - 2) < 0.1, "the header lies")

        let measured = try await validator.validateAudio(at: path).durationSeconds
        let error = await #expect(throws: UploadError.self) { try await strict.validateAudio(at: path) }

        #expect(abs(measured - 14) < 0.2)
        #expect(error?.code == "audio_too_long")
    }

    @Test("too short and too long clips are refused with the field named")
    func durationLimits() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let short = try await TestMedia.makeTone(seconds: 0.2, name: "short.wav", codecArguments: [], in: directory)
        let long = try await TestMedia.makeTone(seconds: 3, name: "long.flac", codecArguments: [], in: directory)
        let strict = UploadValidator(limits: UploadLimits(maxAudioSeconds: 2.5))

        let tooShort = await #expect(throws: UploadError.self) { try await validator.validateAudio(at: short) }
        let tooLong = await #expect(throws: UploadError.self) {
            try await strict.validateAudio(at: long, field: "audio2")
        }

        #expect(tooShort?.code == "audio_too_short")
        #expect(tooShort?.status == 422)
        #expect(tooLong?.code == "audio_too_long")
        #expect(tooLong?.field == "audio2")
        #expect(try await validator.validateAudio(at: long).format == .flac)
    }

    @Test(
        "a file with an audio signature but garbage inside is invalid_audio",
        arguments: [
            ("fake.wav", Array("RIFF".utf8) + [0xFF, 0xFF, 0, 0] + Array("WAVE".utf8)),
            ("fake.ogg", Array("OggS".utf8)),
            ("fake.flac", Array("fLaC".utf8)),
        ] as [(String, [UInt8])])
    func undecodable(name: String, signature: [UInt8]) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write(signature + Array(repeating: 0x5A, count: 4000), to: name)

        let error = await #expect(throws: UploadError.self) { try await validator.validateAudio(at: path) }

        #expect(error?.code == "invalid_audio")
        #expect(error?.status == 422)
    }

    @Test("an MP4 with video but no audio stream is invalid_audio")
    func videoWithoutAudio() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/silent.mp4"
        try await TestMedia.ffmpeg(["-f", "lavfi", "-i", "color=c=blue:s=64x64:d=1", "-c:v", "mpeg4", path])

        let error = await #expect(throws: UploadError.self) { try await validator.validateAudio(at: path) }

        #expect(error?.code == "invalid_audio")
    }

    @Test("a picture uploaded as audio is 415 unsupported_audio_format")
    func pictureAsAudio() async throws {
        let error = await #expect(throws: UploadError.self) {
            try await validator.validateAudio(at: TestMedia.sharedPortraitPath)
        }

        #expect(error?.status == 415)
        #expect(error?.code == "unsupported_audio_format")
    }

    @Test("an oversized file is audio_too_large before ffmpeg runs")
    func oversized() async throws {
        let small = UploadValidator(limits: UploadLimits(maxAudioBytes: 1000), ffmpegPath: "/nonexistent/ffmpeg")

        await #expect(throws: UploadError.fileTooLarge(.audio, field: "audio", limit: 1000)) {
            try await small.validateAudio(at: TestMedia.sharedSpeechPath)
        }
    }

    @Test("a missing ffmpeg is a 500 server fault, not the client's")
    func missingProbe() async throws {
        let broken = UploadValidator(ffmpegPath: "/nonexistent/ffmpeg")

        let error = await #expect(throws: UploadError.self) {
            try await broken.validateAudio(at: TestMedia.sharedSpeechPath)
        }

        #expect(error?.status == 500)
        #expect(error?.code == "audio_probe_unavailable")
    }

    // The time limit only guards against a decoder left running (it would take 300 s); nothing here is timed.
    @Test("a decoder that hangs is killed at the timeout and the audio refused", .timeLimit(.minutes(1)))
    func hangingProbe() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let pidFile = directory.path + "/probe.pid"
        let script = try directory.write(
            Array("#!/bin/sh\necho $$ > \(pidFile)\nexec sleep 300\n".utf8),
            to: "slow-ffmpeg")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        let impatient = UploadValidator(ffmpegPath: script, probeTimeout: .seconds(1))

        let error = await #expect(throws: UploadError.self) {
            try await impatient.validateAudio(at: TestMedia.sharedSpeechPath)
        }

        #expect(error?.code == "invalid_audio")
        // (On a very loaded machine the timeout may fire before the script even starts and writes its pid.)
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            #expect(kill(pid, 0) != 0, "the probe process is gone")
        }
    }
}
