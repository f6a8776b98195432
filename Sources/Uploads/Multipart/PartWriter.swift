import NIOCore
import NIOFileSystem

/// Acts on one request's `PartEvent`s: opens, writes and closes files, collects text fields, enforces caps.
///
/// At most one part is open at a time (multipart parts are sequential).
struct PartWriter {
    let receiver: MultipartReceiver
    private(set) var files: [String: ReceivedFile] = [:]
    private(set) var fields: [String: String] = [:]

    private var openFile: OpenFile?
    private var openText: (name: String, bytes: ByteBuffer)?
    private var partNames: Set<String> = []
    /// Parts seen so far of each repeatable file field.
    private var occurrences: [String: Int] = [:]

    /// A file part being written.
    private struct OpenFile {
        let field: FileField
        /// `field.name`, or `<name>-<n>` for the n-th part of a repeatable field.
        let key: String
        let path: String
        let clientFilename: String?
        let contentType: String?
        let handle: WriteFileHandle
        var writer: BufferedWriter<WriteFileHandle>
        var byteCount = 0
    }

    init(receiver: MultipartReceiver) {
        self.receiver = receiver
    }

    mutating func handle(_ event: PartEvent) async throws {
        switch event {
        case .begin(let headers): try await begin(headers: headers)
        case .body(let bytes): try await append(bytes)
        case .end: try await end()
        }
    }

    /// Closes any open file without making it visible and removes the files written so far.
    mutating func discardEverything() async {
        if let openFile {
            self.openFile = nil
            try? await uncancellable { try await openFile.handle.close(makeChangesVisible: false) }
        }
        for file in files.values {
            _ = try? await uncancellable { try await FileSystem.shared.removeItem(at: FilePath(file.path)) }
        }
        files = [:]
    }

    // MARK: - Events

    private mutating func begin(headers: [(name: String, value: String)]) async throws {
        let limits = receiver.limits
        let fileParts = receiver.fileFields.reduce(0) { $0 + $1.maxCount }
        guard partNames.count + occurrences.values.reduce(0, +) < fileParts + limits.maxFieldCount else {
            throw UploadError.invalidMultipart("The body has more than \(limits.maxFieldCount) form fields.")
        }
        guard headers.count <= limits.maxPartHeaderLines else {
            throw UploadError.invalidMultipart("A part has more than \(limits.maxPartHeaderLines) header lines.")
        }
        guard let disposition = headers.last(where: { $0.name.lowercased() == "content-disposition" }) else {
            throw UploadError.invalidMultipart("A part has no Content-Disposition header.")
        }
        let parsed = HeaderValue(parsing: disposition.value)
        guard parsed.value == "form-data", let name = parsed.parameters["name"], !name.isEmpty else {
            throw UploadError.invalidMultipart("A part's Content-Disposition is not form-data with a name.")
        }
        let repeatable = receiver.fileFields.first { $0.name == name && $0.maxCount > 1 }
        if let repeatable {
            let occurrence = occurrences[name, default: 0] + 1
            guard occurrence <= repeatable.maxCount else {
                throw UploadError.invalidParameter(
                    name, "The form field `\(name)` is given more than \(repeatable.maxCount) times.")
            }
            occurrences[name] = occurrence
        } else {
            guard partNames.insert(name).inserted else {
                throw UploadError.invalidParameter(name, "The form field `\(name)` is given more than once.")
            }
        }
        let clientFilename = parsed.parameters["filename"]

        if let field = receiver.fileFields.first(where: { $0.name == name }) {
            // Our field name, never the client's filename, names the file.
            let key = field.key(occurrence: occurrences[name] ?? 1)
            let path = receiver.directory + "/" + key
            let handle = try await FileSystem.shared.openFile(
                forWritingAt: FilePath(path),
                options: .newFile(replaceExisting: false))
            let contentType = headers.last(where: { $0.name.lowercased() == "content-type" })?.value
            openFile = OpenFile(
                field: field, key: key, path: path, clientFilename: clientFilename, contentType: contentType,
                handle: handle, writer: handle.bufferedWriter())
        } else if clientFilename == nil {
            openText = (name, ByteBuffer())
        }
        // An unknown file part is read past and dropped.
    }

    private mutating func append(_ bytes: ByteBuffer) async throws {
        if let file = openFile {
            let limit = receiver.limits.maxBytes(for: file.field.kind)
            guard file.byteCount + bytes.readableBytes <= limit else {
                throw UploadError.fileTooLarge(file.field.kind, field: file.field.name, limit: limit)
            }
            try receiver.beforeWriting(bytes.readableBytes)
            // Mutated in place (through the optional) so the writer's buffer is never copied.
            openFile!.byteCount += bytes.readableBytes
            try await openFile!.writer.write(contentsOf: bytes)
        } else if let text = openText {
            guard text.bytes.readableBytes + bytes.readableBytes <= receiver.limits.maxFieldBytes else {
                throw UploadError.invalidParameter(
                    text.name, "The form field `\(text.name)` is longer than \(receiver.limits.maxFieldBytes) bytes.")
            }
            var bytes = bytes
            openText!.bytes.writeBuffer(&bytes)
        }
    }

    private mutating func end() async throws {
        if openFile != nil {
            try await openFile!.writer.flush()
            let file = openFile!
            openFile = nil
            // An empty file is the same as a missing one: never made visible, never listed.
            let isEmpty = file.byteCount == 0
            try await uncancellable { try await file.handle.close(makeChangesVisible: !isEmpty) }
            if !isEmpty {
                files[file.key] = ReceivedFile(
                    field: file.key, path: file.path,
                    byteCount: file.byteCount, clientFilename: file.clientFilename,
                    contentType: file.contentType)
            }
        } else if let text = openText {
            openText = nil
            guard let value = String(validating: text.bytes.readableBytesView, as: UTF8.self) else {
                throw UploadError.invalidParameter(text.name, "The form field `\(text.name)` is not UTF-8 text.")
            }
            fields[text.name] = value
        }
    }
}

/// Runs `body` in a fresh task that does not inherit cancellation: a file handle must be closed even when the
/// request was cancelled (NIO refuses to run work for a cancelled task, and an unclosed handle traps on deinit).
private func uncancellable<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await Task { try await body() }.value
}
