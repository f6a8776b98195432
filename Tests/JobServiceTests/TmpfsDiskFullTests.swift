import Foundation
import HummingbirdTesting
import Testing

@testable import JobService

/// A real full disk: the data folder on a 1 MiB tmpfs, so writing an upload fails with `ENOSPC` from the kernel (no
/// injection). Mounting needs root (CAP_SYS_ADMIN); where it is not permitted (most CI runners) the suite is skipped.
@Suite(.enabled(if: Tmpfs.canMount, "skipped: mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN)"))
struct TmpfsDiskFullTests {
    @Test func anUploadLargerThanTheFreeSpaceIs507AndLeavesNoFiles() async throws {
        let tmpfs = try Tmpfs(size: "1m")
        defer { tmpfs.unmount() }
        var configuration = TestSupport.configuration(engine: [])
        configuration.dataDirectory = tmpfs.path
        let service = try await buildApplication(
            configuration, repository: MemoryJobRepository(), engine: SilentEngine(hello: TestSupport.fakeEngineHello),
            logger: TestSupport.quietLogger)
        // A 60 s WAV is about 1.9 MB: more than the whole disk
        let form = try MultipartForm.valid(audioSeconds: 60)
        let uploads = configuration.uploadsDirectory
        try await service.application.test(.router) { client in
            let response = try await client.execute(
                uri: "/api/generate", method: .post, headers: form.headers, body: form.body)
            #expect(response.status.code == 507, "\(response.json)")
            #expect(response.json["error"]?["code"] == .string("insufficient_storage"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: uploads) == [])
        }
    }
}

/// A tmpfs mounted on a fresh temporary folder.
struct Tmpfs {
    let path: String

    init(size: String) throws {
        path = TestSupport.makeTemporaryDirectory("itk-tmpfs")
        guard try TestSupport.runProgram(["mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path]) == 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSLocalizedDescriptionKey: "mount failed"])
        }
    }

    func unmount() {
        _ = try? TestSupport.runProgram(["umount", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Whether this process may mount a tmpfs (tried once, on a tiny one).
    static let canMount: Bool = {
        guard let probe = try? Tmpfs(size: "64k") else { return false }
        probe.unmount()
        return true
    }()
}
