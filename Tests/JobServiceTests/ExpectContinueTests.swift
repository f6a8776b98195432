import Foundation
import HummingbirdTesting
import Testing

@testable import JobService

/// `Expect: 100-continue`: clients that ask before sending a large body are answered at once.
@Suite struct ExpectContinueTests {
    @Test func anUploadThatAsksFirstIsToldToContinue() async throws {
        let configuration = TestSupport.configuration(engine: TestSupport.fakeEngineCommand([]))
        let service = try await buildApplication(configuration, logger: TestSupport.quietLogger)
        let image = try PreviewEngine.portrait()
        let audio = try PreviewEngine.speech(seconds: 2)
        try await service.application.test(.live) { client in
            let port = try #require(client.port)
            // curl waits up to a second for the 100, then sends the body anyway: only its verbose log tells.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "curl", "-s", "-v", "-o", "/dev/null", "-w", "%{http_code}",
                "-H", "Expect: 100-continue", "-F", "image=@\(image)", "-F", "audio=@\(audio)",
                "http://127.0.0.1:\(port)/api/generate",
            ]
            let output = Pipe()
            let log = Pipe()
            process.standardOutput = output
            process.standardError = log
            try process.run()
            let verbose = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let status = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(verbose.contains("> Expect: 100-continue"))
            #expect(verbose.contains("< HTTP/1.1 100 Continue"), "\(verbose)")
            #expect(status == "200")
        }
    }
}
