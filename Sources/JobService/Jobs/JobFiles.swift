import Foundation

/// Where a job's files live under the data folder, and their clean-up.
///
/// `uploads/<id>/image`, `uploads/<id>/audio` (the original file names are never used), `results/<id>.mp4`, and
/// the live stream's `live/<id>/` (`init.mp4`, `clip-00001.m4s`, ...).
public struct JobFiles: Sendable {
    public let uploadsDirectory: String
    public let resultsDirectory: String
    public let liveDirectory: String

    /// - Parameter liveDirectory: by default `live/` next to `resultsDirectory`.
    public init(uploadsDirectory: String, resultsDirectory: String, liveDirectory: String? = nil) {
        self.uploadsDirectory = uploadsDirectory
        self.resultsDirectory = resultsDirectory
        self.liveDirectory =
            liveDirectory
            ?? ((resultsDirectory as NSString).deletingLastPathComponent as NSString).appendingPathComponent("live")
    }

    public func uploadFolder(for id: String) -> String { (uploadsDirectory as NSString).appendingPathComponent(id) }
    public func resultPath(for id: String) -> String {
        (resultsDirectory as NSString).appendingPathComponent("\(id).mp4")
    }

    /// Creates the data folders.
    public func createDirectories() throws {
        for folder in [uploadsDirectory, resultsDirectory, liveDirectory] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
    }

    /// The job ids that have an upload folder.
    public func uploadFolderIDs() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: uploadsDirectory)) ?? []
    }

    /// Deletes a job's uploads (once it finished, they are not needed any more).
    public func removeUploads(of id: String) {
        try? FileManager.default.removeItem(atPath: uploadFolder(for: id))
    }

    /// Deletes a job's result and any partial result the engine left.
    public func removeResult(of id: String) {
        let path = resultPath(for: id)
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: path + ".part")
    }

    /// Size of the finished result, or `nil` when it is missing.
    public func resultSize(of id: String) -> Int? {
        fileSize(at: resultPath(for: id))
    }

    // MARK: - The live stream

    public func liveFolder(for id: String) -> String { (liveDirectory as NSString).appendingPathComponent(id) }

    /// A file of a job's live stream; `name` must be one the job recorded (`LiveStream.contains(file:)`).
    func livePath(for id: String, file name: String) -> String {
        (liveFolder(for: id) as NSString).appendingPathComponent(name)
    }

    /// Empties the job's live folder for a new attempt (the last attempt's files go) and returns its path.
    func prepareLiveFolder(for id: String) throws -> String {
        let folder = liveFolder(for: id)
        removeLive(of: id)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Deletes a job's live stream (retention, or a job the database does not know).
    public func removeLive(of id: String) {
        try? FileManager.default.removeItem(atPath: liveFolder(for: id))
    }

    /// The job ids that have a live folder.
    public func liveFolderIDs() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: liveDirectory)) ?? []
    }

    /// Size of a file, or `nil` when it is missing.
    func fileSize(at path: String) -> Int? {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        return (attributes?[.size] as? NSNumber)?.intValue
    }
}
