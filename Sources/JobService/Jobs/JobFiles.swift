import Foundation

/// Where a job's files live under the data folder, and their clean-up.
///
/// `uploads/<id>/image`, `uploads/<id>/audio` (the original file names are never used), `results/<id>.mp4`.
public struct JobFiles: Sendable {
    public let uploadsDirectory: String
    public let resultsDirectory: String

    public init(uploadsDirectory: String, resultsDirectory: String) {
        self.uploadsDirectory = uploadsDirectory
        self.resultsDirectory = resultsDirectory
    }

    public func uploadFolder(for id: String) -> String { (uploadsDirectory as NSString).appendingPathComponent(id) }
    public func resultPath(for id: String) -> String {
        (resultsDirectory as NSString).appendingPathComponent("\(id).mp4")
    }

    /// Creates the data folders.
    public func createDirectories() throws {
        for folder in [uploadsDirectory, resultsDirectory] {
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
        let attributes = try? FileManager.default.attributesOfItem(atPath: resultPath(for: id))
        return (attributes?[.size] as? NSNumber)?.intValue
    }
}
