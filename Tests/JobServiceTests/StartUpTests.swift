import Foundation
import Testing

@testable import JobService

/// What `buildApplication` puts right before serving.
@Suite struct StartUpTests {
    @Test func uploadFoldersOfNoQueuedOrRunningJobAreRemovedEvenWithRetentionOff() async throws {
        let configuration = TestSupport.configuration(engine: [])
        #expect(configuration.retention == nil)
        let files = JobFiles(
            uploadsDirectory: configuration.uploadsDirectory, resultsDirectory: configuration.resultsDirectory)
        // Given a job a crash interrupted (it goes back to the queue), one that had finished, one queued, and the
        // folder of an upload the crash cut short (no job)
        let repository = MemoryJobRepository()
        let interrupted = try await repository.enqueue(TestSupport.makeJob(), maxQueueSize: 20).job
        _ = try await repository.claimNextJob()
        let finished = try await repository.enqueue(TestSupport.makeJob(), maxQueueSize: 20).job
        _ = try await repository.claimNextJob()
        _ = try await repository.fail(finished.id, failure: JobFailure(code: "bad_audio", message: "no"))
        let queued = try await repository.enqueue(TestSupport.makeJob(), maxQueueSize: 20).job
        let orphan = UUID().uuidString.lowercased()
        for id in [interrupted.id, finished.id, queued.id, orphan] {
            try FileManager.default.createDirectory(
                atPath: files.uploadFolder(for: id), withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: files.uploadFolder(for: id) + "/audio", contents: Data([1]))
        }

        // When the service is built on them
        _ = try await buildApplication(
            configuration, repository: repository, engine: SilentEngine(), logger: TestSupport.quietLogger)

        // Then only the uploads of jobs still to run are left
        let left = try FileManager.default.contentsOfDirectory(atPath: configuration.uploadsDirectory)
        #expect(Set(left) == [interrupted.id, queued.id])
        #expect(try await repository.job(id: interrupted.id)?.status == .queued)
    }

    @Test func liveFoldersOfUnknownOrExpiredJobsAreRemoved() async throws {
        let configuration = TestSupport.configuration(engine: [])
        let files = JobFiles(
            uploadsDirectory: configuration.uploadsDirectory, resultsDirectory: configuration.resultsDirectory,
            liveDirectory: configuration.liveDirectory)
        // Given the live folders of a finished job, of an expired one, and of a job the database does not know
        let repository = MemoryJobRepository()
        let finished = try await repository.enqueue(TestSupport.makeJob(), maxQueueSize: 20).job
        let expired = try await repository.enqueue(TestSupport.makeJob(), maxQueueSize: 20).job
        for job in [finished, expired] { _ = try await repository.cancel(job.id) }
        try await repository.markExpired(expired.id)
        let unknown = UUID().uuidString.lowercased()
        for id in [finished.id, expired.id, unknown] {
            try FileManager.default.createDirectory(
                atPath: files.liveFolder(for: id), withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: files.liveFolder(for: id) + "/init.mp4", contents: Data([1]))
        }

        // When the service is built on them
        _ = try await buildApplication(
            configuration, repository: repository, engine: SilentEngine(), logger: TestSupport.quietLogger)

        // Then only the finished job's stream is left (retention is its keeper)
        let left = try FileManager.default.contentsOfDirectory(atPath: configuration.liveDirectory)
        #expect(left == [finished.id])
    }
}
