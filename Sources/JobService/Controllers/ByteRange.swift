import Foundation

/// A `Range: bytes=...` request header, resolved against a file size (RFC 9110 §14.1.2). One range only; a
/// header with several ranges or another unit is ignored (the whole file is sent, which the RFC allows).
enum ByteRange: Equatable {
    /// No usable range: send everything (200).
    case whole
    /// Send these bytes (206).
    case part(ClosedRange<Int>)
    /// The range lies outside the file (416).
    case unsatisfiable

    /// - `bytes=0-9`: bytes 0 to 9; `bytes=100-`: from 100 to the end; `bytes=-100`: the last 100 bytes.
    static func resolve(header: String?, size: Int) -> ByteRange {
        guard let header else { return .whole }
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes=") else { return .whole }
        let spec = trimmed.dropFirst("bytes=".count).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        if first.isEmpty {
            // Suffix: the last N bytes.
            guard let count = Int(last), count >= 0 else { return .whole }
            guard count > 0, size > 0 else { return .unsatisfiable }
            return .part(max(0, size - count)...(size - 1))
        }
        guard let start = Int(first), start >= 0 else { return .whole }
        guard start < size else { return .unsatisfiable }
        if last.isEmpty { return .part(start...(size - 1)) }
        guard let end = Int(last), end >= start else { return .whole }
        return .part(start...min(end, size - 1))
    }
}
