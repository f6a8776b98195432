import Uploads

/// Refuses new uploads while the data folder has less than `--min-free-disk` free, so a full disk never breaks a
/// running job's result or the database; `/readyz` tells why.
public struct LowDiskWatermark: Sendable {
    /// The folder whose file system is watched (the data folder).
    let directory: String
    /// Free bytes to keep; 0 turns the check off.
    let minimumFreeBytes: Int
    let space: DiskSpace

    /// Why new uploads are refused now, were `bytes` more written; `nil` when there is room (or the check is off, or
    /// the free space cannot be told).
    func shortage(writing bytes: Int = 0) -> String? {
        guard minimumFreeBytes > 0, let free = space.availableBytes(directory) else { return nil }
        guard free - Int64(bytes) < Int64(minimumFreeBytes) else { return nil }
        return "low disk space: \(free) bytes free for the data folder, below --min-free-disk (\(minimumFreeBytes))"
    }

    /// - Throws: 507 `insufficient_storage` when writing `bytes` more would go below the watermark.
    func checkRoom(writing bytes: Int = 0) throws {
        if shortage(writing: bytes) != nil { throw UploadError.insufficientStorage }
    }
}
