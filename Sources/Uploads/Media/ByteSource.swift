import Foundation

/// Random access to a file's bytes, so header parsers can skip segments without reading what they skip.
protocol ByteSource {
    /// Total length in bytes.
    var count: Int { get }
    /// Up to `length` bytes starting at `offset`; fewer (possibly none) past the end.
    func bytes(at offset: Int, length: Int) throws -> [UInt8]
}

extension ByteSource {
    /// Exactly `length` bytes at `offset`, or `nil` when the source ends first (a truncated file).
    func exactBytes(at offset: Int, length: Int) throws -> [UInt8]? {
        guard offset >= 0, length >= 0 else { return nil }
        let bytes = try bytes(at: offset, length: length)
        return bytes.count == length ? bytes : nil
    }
}

/// Bytes held in memory (tests, small headers).
struct MemoryBytes: ByteSource {
    let storage: [UInt8]
    init(_ storage: [UInt8]) { self.storage = storage }

    var count: Int { storage.count }

    func bytes(at offset: Int, length: Int) -> [UInt8] {
        guard offset < storage.count else { return [] }
        return Array(storage[offset..<min(storage.count, offset + length)])
    }
}

/// Bytes read on demand from an open file; the file is never loaded whole.
final class FileBytes: ByteSource {
    private let handle: FileHandle
    let count: Int

    /// Opens `path` for reading.
    init(path: String) throws {
        handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        count = Int(try handle.seekToEnd())
    }

    deinit { try? handle.close() }

    func bytes(at offset: Int, length: Int) throws -> [UInt8] {
        guard offset < count, length > 0 else { return [] }
        try handle.seek(toOffset: UInt64(offset))
        return Array(try handle.read(upToCount: length) ?? Data())
    }
}

// MARK: - Integer helpers

extension Array where Element == UInt8 {
    func bigEndian16(at index: Int) -> Int { Int(self[index]) << 8 | Int(self[index + 1]) }

    func bigEndian32(at index: Int) -> Int { bigEndian16(at: index) << 16 | bigEndian16(at: index + 2) }

    func littleEndian16(at index: Int) -> Int { Int(self[index]) | Int(self[index + 1]) << 8 }

    func littleEndian24(at index: Int) -> Int { littleEndian16(at: index) | Int(self[index + 2]) << 16 }

    func littleEndian32(at index: Int) -> Int { littleEndian24(at: index) | Int(self[index + 3]) << 24 }
}
