import GRDB
import Uploads

/// Whether a failed write means the disk is full: SQLite's `SQLITE_FULL` (or an I/O error, which is how SQLite
/// reports most failed writes), or `ENOSPC` / `EDQUOT` from the file system.
func isDiskFull(_ error: any Error) -> Bool {
    if let error = error as? DatabaseError {
        return error.resultCode == .SQLITE_FULL || error.resultCode == .SQLITE_IOERR
    }
    return isOutOfSpace(error)
}
