/// A structured header value such as `form-data; name="image"; filename="a.png"` or
/// `multipart/form-data; boundary=xyz`: a main value and `;`-separated parameters (quoted strings allowed).
///
/// Backslashes are kept as they are: browsers send `form-data` filenames with `"` percent-encoded and `\` bare
/// (WHATWG HTML), so treating `\` as an escape would corrupt Windows-style names.
struct HeaderValue: Equatable {
    /// The part before the first `;`, lowercased and trimmed (`form-data`, `multipart/form-data`).
    let value: String
    /// Parameters by lowercased name, without surrounding quotes.
    let parameters: [String: String]

    init(parsing text: String) {
        var pieces: [String] = []
        var current = ""
        var inQuotes = false
        for character in text {
            if character == "\"" {
                current.append(character)
                inQuotes.toggle()
            } else if character == ";" && !inQuotes {
                pieces.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        pieces.append(current)

        value = pieces[0].trimmingSpaces.lowercased()
        var parameters: [String: String] = [:]
        for piece in pieces.dropFirst() {
            guard let equals = piece.firstIndex(of: "=") else { continue }
            let name = piece[..<equals].trimmingSpaces.lowercased()
            let rawValue = piece[piece.index(after: equals)...].trimmingSpaces
            // The first occurrence wins, so a repeated parameter cannot override an earlier one.
            if parameters[name] == nil { parameters[name] = Self.unquoted(rawValue) }
        }
        self.parameters = parameters
    }

    private static func unquoted(_ text: String) -> String {
        guard text.count >= 2, text.first == "\"", text.last == "\"" else { return text }
        return String(text.dropFirst().dropLast())
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
