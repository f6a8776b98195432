import Foundation
import Logging
import ServiceLifecycle

/// Deletes the files of jobs that finished longer than `retention` ago, every `interval`. Their rows stay (history);
/// downloads then answer 410 `result_expired`.
struct RetentionService: Service {
    let repository: any JobRepository
    let files: JobFiles
    let retention: Duration?
    let interval: Duration
    let clock: any ServiceClock
    let logger: Logger

    func run() async throws {
        guard retention != nil else {
            try? await gracefulShutdown()
            return
        }
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            await sweep()
            try? await cancelWhenGracefulShutdown {
                try await clock.sleep(for: interval)
            }
        }
    }

    /// Upload folders older than an hour that belong to no waiting or running job: left by a crash in the middle of
    /// an upload, or by a job that ended while the service was stopping.
    func removeOrphanUploads(now: Date, minimumAge: TimeInterval = 3600) async throws {
        let fileManager = FileManager.default
        let names = (try? fileManager.contentsOfDirectory(atPath: files.uploadsDirectory)) ?? []
        for name in names {
            let folder = (files.uploadsDirectory as NSString).appendingPathComponent(name)
            let modified = (try? fileManager.attributesOfItem(atPath: folder))?[.modificationDate] as? Date ?? now
            guard now.timeIntervalSince(modified) > minimumAge else { continue }
            if let job = try await repository.job(id: name), !job.status.isTerminal { continue }
            try? fileManager.removeItem(atPath: folder)
            logger.info("retention: deleted orphan upload folder \(name)")
        }
    }

    /// Expires every job that finished before `now - retention`.
    /// - Returns: how many jobs were expired.
    @discardableResult
    func sweep(now: Date = Date()) async -> Int {
        guard let retention else { return 0 }
        let cutoff = now.addingTimeInterval(
            -Double(retention.components.seconds)
                - Double(retention.components.attoseconds) / 1e18)
        do {
            let jobs = try await repository.jobsToExpire(finishedBefore: cutoff)
            for job in jobs {
                files.removeResult(of: job.id)
                files.removeUploads(of: job.id)
                files.removeLive(of: job.id)
                try await repository.markExpired(job.id, now: now)
            }
            if !jobs.isEmpty { logger.info("retention: deleted the files of \(jobs.count) job(s)") }
            try await removeOrphanUploads(now: now)
            return jobs.count
        } catch {
            logger.error("retention sweep failed: \(error)")
            return 0
        }
    }
}
