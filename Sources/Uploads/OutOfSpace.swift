import Foundation
import NIOFileSystem

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whether `error` (or an error it wraps) says the disk is full: `ENOSPC`, or `EDQUOT` (the user's quota is spent).
///
/// NIO's file system wraps the failed system call's `errno`; Foundation reports `CocoaError.fileWriteOutOfSpace` or a
/// POSIX error.
public func isOutOfSpace(_ error: any Error) -> Bool {
    let fullCodes: Set<Int32> = [ENOSPC, EDQUOT]
    switch error {
    case let error as FileSystemError:
        return error.cause.map(isOutOfSpace) ?? false
    case let error as FileSystemError.SystemCallError:
        return fullCodes.contains(error.errno.rawValue)
    case let error as POSIXError:
        return fullCodes.contains(error.code.rawValue)
    case let error as CocoaError:
        return error.code == .fileWriteOutOfSpace
    default:
        return false
    }
}
