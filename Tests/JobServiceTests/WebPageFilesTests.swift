import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import JobService

/// Only the web page's own files are served (issue 15): not its tests, nothing else in the folder, and no path
/// with a control character.
@Suite struct WebPageFilesTests {
    /// A web folder with the page, its tests and some clutter.
    private func webFolder() throws -> String {
        let web = TestSupport.makeTemporaryDirectory("itk-web")
        for (path, text) in [
            ("index.html", "<!doctype html><title>InfiniteTalk</title>"), ("app.js", "export {}"),
            ("styles.css", "body {}"), ("ui/job-card.js", "export {}"), ("tests/test_browser.py", "def test(): pass"),
            ("tests/conftest.py", ""), (".env", "SECRET=1"), ("ui/.draft.js", ""), ("__pycache__/x.pyc", ""),
            ("notes.md", "# notes"),
        ] {
            let file = (web as NSString).appendingPathComponent(path)
            try FileManager.default.createDirectory(
                atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: file, atomically: true, encoding: .utf8)
        }
        return web
    }

    @Test func onlyThePagesOwnAssetsAreListed() throws {
        #expect(
            WebPageFiles.assets(in: try webFolder())
                == ["/", "/index.html", "/app.js", "/styles.css", "/ui/job-card.js"])
    }

    @Test func thePageIsServedAndNothingElse() async throws {
        let configuration = TestSupport.configuration(engine: [], settings: ["web-dir": try webFolder()])
        let service = try await buildApplication(
            configuration, repository: MemoryJobRepository(), engine: SilentEngine(hello: TestSupport.fakeEngineHello),
            logger: TestSupport.quietLogger)
        try await service.application.test(.router) { client in
            #expect(try await client.execute(uri: "/", method: .get).status == .ok)
            let script = try await client.execute(uri: "/ui/job-card.js", method: .get)
            #expect(script.status == .ok)
            #expect(script.headers[.contentType]?.contains("javascript") == true)
            for path in [
                "/tests/test_browser.py", "/tests/", "/.env", "/notes.md", "/ui/.draft.js", "/__pycache__/x.pyc",
            ] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .notFound, "\(path)")
                #expect(response.json["error"]?["code"] == .string("not_found"), "\(path)")
            }
            for path in ["/app.js%00.png", "/app.js%0a", "/%ff"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .badRequest, "\(path)")
                #expect(response.json["error"]?["code"] == .string("invalid_path"), "\(path)")
            }
        }
    }
}
