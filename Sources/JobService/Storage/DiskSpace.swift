import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How many bytes can still be written under a folder. The service asks the file system (`statvfs`); tests pass
/// their own answer to say "the disk is full" without filling one.
public struct DiskSpace: Sendable {
    /// Bytes an unprivileged writer may still use under `path`; `nil` when it cannot be told.
    public let availableBytes: @Sendable (_ path: String) -> Int64?

    public init(availableBytes: @escaping @Sendable (_ path: String) -> Int64?) {
        self.availableBytes = availableBytes
    }

    /// The file system's answer: `f_bavail` blocks of `f_frsize` bytes.
    public static let system = DiskSpace { path in
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }
}
