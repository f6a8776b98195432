import Foundation
import Hummingbird
import Logging

/// The web page's own files, for `FileMiddleware`: an allow-list made at start-up from the web folder. Only page
/// assets are listed (`index.html` and `.js`, `.css`, images, fonts); the page's tests (`tests/`), dot-files,
/// `__pycache__` and anything else in the folder are not served (they fall through to 404 `not_found`).
struct WebPageFiles: FileProvider {
    typealias FileAttributes = LocalFileSystem.FileAttributes
    typealias FileIdentifier = LocalFileSystem.FileIdentifier

    /// URL paths that are served (`/`, `/index.html`, `/ui/job-card.js`).
    let servedPaths: Set<String>
    private let files: LocalFileSystem

    static let assetExtensions: Set<String> = [
        "html", "js", "mjs", "css", "svg", "png", "ico", "jpg", "jpeg", "gif", "webp", "woff", "woff2", "webmanifest",
    ]
    static let skippedFolders: Set<String> = ["tests", "__pycache__", "node_modules"]

    init(folder: String, logger: Logger) {
        files = LocalFileSystem(rootFolder: folder, threadPool: .singleton, logger: logger)
        servedPaths = Self.assets(in: folder)
    }

    static func assets(in folder: String) -> Set<String> {
        var paths: Set<String> = ["/"]
        let root = URL(fileURLWithPath: folder)
        guard
            let walk = FileManager.default.enumerator(
                at: root, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles])
        else { return paths }
        let rootPath = root.standardizedFileURL.path
        for case let url as URL in walk {
            let name = url.lastPathComponent
            if skippedFolders.contains(name) {
                walk.skipDescendants()
                continue
            }
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                assetExtensions.contains(url.pathExtension.lowercased())
            else { continue }
            let path = url.standardizedFileURL.path
            guard path.hasPrefix(rootPath + "/") else { continue }
            paths.insert(String(path.dropFirst(rootPath.count)))
        }
        return paths
    }

    func getFileIdentifier(_ path: String) -> FileIdentifier? {
        servedPaths.contains(path) ? files.getFileIdentifier(path) : nil
    }

    func getAttributes(id: FileIdentifier) async throws -> FileAttributes? {
        try await files.getAttributes(id: id)
    }

    func loadFile(id: FileIdentifier, context: some RequestContext) async throws -> ResponseBody {
        try await files.loadFile(id: id, context: context)
    }

    func loadFile(id: FileIdentifier, range: ClosedRange<Int>, context: some RequestContext) async throws
        -> ResponseBody
    {
        try await files.loadFile(id: id, range: range, context: context)
    }
}
