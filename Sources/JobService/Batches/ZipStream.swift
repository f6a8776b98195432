import Foundation
import NIOCore

/// A ZIP archive of files on disk, written as a stream: each file is read twice (once for its CRC-32, once into
/// the archive), so neither memory nor disk ever holds the archive. Entries are stored (MP4s do not shrink), so the
/// archive's size is known before it is written (`Content-Length`). Without ZIP64: at most 4 GiB in all.
struct ZipStream: Sendable {
    struct Entry: Sendable {
        let name: String
        let path: String
        let size: Int
        let crc: UInt32
    }

    let entries: [Entry]
    private static let chunk = 1 << 18

    /// Reads each file once for its CRC-32 and size.
    /// - Throws: `TooLarge` past 4 GiB.
    init(files: [(name: String, path: String)]) throws {
        var entries: [Entry] = []
        for file in files {
            var crc = CRC32()
            let size = try Self.read(file.path) { crc.update($0) }
            entries.append(Entry(name: file.name, path: file.path, size: size, crc: crc.value))
        }
        self.entries = entries
        guard byteCount <= Int(UInt32.max) else { throw TooLarge(bytes: byteCount) }
    }

    struct TooLarge: Error {
        let bytes: Int
    }

    /// The archive's exact size.
    var byteCount: Int {
        let local = entries.reduce(0) { $0 + 30 + $1.name.utf8.count + $1.size }
        let central = entries.reduce(0) { $0 + 46 + $1.name.utf8.count }
        return local + central + 22
    }

    /// Writes the archive in chunks to `write`.
    func write(_ write: (ByteBuffer) async throws -> Void) async throws {
        var offsets: [Int] = []
        var offset = 0
        for entry in entries {
            offsets.append(offset)
            var header = ByteBuffer()
            header.writeInteger(UInt32(0x0403_4b50), endianness: .little)
            writeCommon(entry, to: &header)
            header.writeString(entry.name)
            try await write(header)
            offset += header.readableBytes
            guard let handle = FileHandle(forReadingAtPath: entry.path) else { throw CocoaError(.fileReadNoSuchFile) }
            defer { try? handle.close() }
            var written = 0
            // One chunk in memory at a time: the next is read only once the client took this one.
            while written < entry.size, let data = try handle.read(upToCount: min(Self.chunk, entry.size - written)),
                !data.isEmpty
            {
                try await write(ByteBuffer(bytes: data))
                written += data.count
            }
            guard written == entry.size else { throw CocoaError(.fileReadUnknown) } // shrank since it was measured
            offset += written
        }
        var central = ByteBuffer()
        for (entry, local) in zip(entries, offsets) {
            central.writeInteger(UInt32(0x0201_4b50), endianness: .little)
            central.writeInteger(UInt16(20), endianness: .little) // made by: version 2.0
            writeCommon(entry, to: &central)
            central.writeInteger(UInt16(0), endianness: .little) // comment length
            central.writeInteger(UInt16(0), endianness: .little) // disk number
            central.writeInteger(UInt16(0), endianness: .little) // internal attributes
            central.writeInteger(UInt32(0), endianness: .little) // external attributes
            central.writeInteger(UInt32(local), endianness: .little)
            central.writeString(entry.name)
        }
        let centralSize = central.readableBytes
        central.writeInteger(UInt32(0x0605_4b50), endianness: .little)
        central.writeInteger(UInt16(0), endianness: .little)
        central.writeInteger(UInt16(0), endianness: .little)
        central.writeInteger(UInt16(entries.count), endianness: .little)
        central.writeInteger(UInt16(entries.count), endianness: .little)
        central.writeInteger(UInt32(centralSize), endianness: .little)
        central.writeInteger(UInt32(offset), endianness: .little)
        central.writeInteger(UInt16(0), endianness: .little)
        try await write(central)
    }

    /// Version needed, flags (UTF-8 names), method (stored), time and date (1980-01-01), CRC, sizes, name length,
    /// extra length: the fields the local header and the central entry share.
    private func writeCommon(_ entry: Entry, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(20), endianness: .little)
        buffer.writeInteger(UInt16(0x0800), endianness: .little)
        buffer.writeInteger(UInt16(0), endianness: .little)
        buffer.writeInteger(UInt16(0), endianness: .little)
        buffer.writeInteger(UInt16(0x0021), endianness: .little)
        buffer.writeInteger(entry.crc, endianness: .little)
        buffer.writeInteger(UInt32(entry.size), endianness: .little)
        buffer.writeInteger(UInt32(entry.size), endianness: .little)
        buffer.writeInteger(UInt16(entry.name.utf8.count), endianness: .little)
        buffer.writeInteger(UInt16(0), endianness: .little)
    }

    /// Feeds the file at `path` to `body` in chunks.
    /// - Returns: its size.
    @discardableResult
    private static func read(_ path: String, _ body: (Data) -> Void) throws -> Int {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CocoaError(.fileReadNoSuchFile) }
        defer { try? handle.close() }
        var size = 0
        while let data = try handle.read(upToCount: chunk), !data.isEmpty {
            body(data)
            size += data.count
        }
        return size
    }
}

/// CRC-32 (IEEE 802.3, as ZIP uses it).
struct CRC32 {
    private(set) var value: UInt32 = 0
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        return crc
    }

    mutating func update(_ data: Data) {
        var crc = ~value
        for byte in data { crc = Self.table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        value = ~crc
    }
}
