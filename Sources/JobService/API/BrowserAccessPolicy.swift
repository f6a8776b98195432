import Foundation

/// Who may talk to the service from a browser: the checks that keep web pages the local user visits from using a
/// local install (issue 15).
///
/// - `Host`: when the server is bound to a loopback address, only loopback names (`localhost`, `*.localhost`), IP
///   literals and `--allowed-hosts` are accepted. This stops DNS rebinding (a site whose name suddenly resolves to
///   127.0.0.1 sends its own name as `Host`). Bound to another address, any `Host` is accepted unless
///   `--allowed-hosts` is set. A request without `Host` (HTTP/1.0 programs) is accepted.
/// - `Origin`: WebSocket upgrades and state-changing methods (POST, PUT, PATCH, DELETE) whose `Origin` is present
///   must come from the server's own origin (same host and port as the request's `Host`) or one of
///   `--allowed-origins`. Browsers always send `Origin` on these; programs (curl) send none and are accepted.
///
/// Reads (GET) need no Origin check: without CORS headers, which the service never sends, a foreign page cannot
/// read the answers.
struct BrowserAccessPolicy: Sendable {
    /// Whether `Host` is checked at all.
    let checksHost: Bool
    /// Extra names accepted in `Host`, lowercased, without port.
    let allowedHosts: Set<String>
    /// Extra origins, normalized (`https://app.example:443`).
    let allowedOrigins: Set<String>

    init(configuration: ServiceConfiguration) {
        allowedHosts = Set(configuration.allowedHosts.compactMap { Authority($0)?.host })
        allowedOrigins = Set(configuration.allowedOrigins.compactMap { Origin($0)?.normalized })
        checksHost = Self.isLoopback(configuration.host) || !allowedHosts.isEmpty
    }

    /// Why a request with these headers is refused, or `nil` when it is accepted.
    func refusal(method: String, host: String?, origin: String?, isUpgrade: Bool) -> APIError? {
        let authority = host.flatMap(Authority.init)
        if checksHost, let host {
            guard let authority, isAcceptedHostName(authority.host) else { return .forbiddenHost(host) }
        }
        guard isUpgrade || Self.stateChangingMethods.contains(method.uppercased()), let origin else { return nil }
        guard let parsed = Origin(origin) else { return .forbiddenOrigin(origin) }
        if allowedOrigins.contains(parsed.normalized) { return nil }
        guard let authority, parsed.isSameServer(as: authority) else { return .forbiddenOrigin(origin) }
        return nil
    }

    static let stateChangingMethods: Set<String> = ["POST", "PUT", "PATCH", "DELETE"]

    private func isAcceptedHostName(_ name: String) -> Bool {
        name == "localhost" || name.hasSuffix(".localhost") || Self.isIPLiteral(name) || allowedHosts.contains(name)
    }

    static func isLoopback(_ bindAddress: String) -> Bool {
        let address = bindAddress.lowercased()
        return address == "localhost" || address == "::1" || address == "[::1]" || address.hasPrefix("127.")
    }

    static func isIPLiteral(_ name: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }
}

/// `host[:port]` as in a `Host` header (`[::1]:8000` for IPv6); the host lowercased, without brackets.
struct Authority: Equatable {
    let host: String
    let port: Int?

    init?(_ text: String) {
        let text = text.trimmingCharacters(in: .whitespaces).lowercased()
        var host = Substring(text)
        var port: Int?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let number = Int(rest.dropFirst()) else { return nil }
                port = number
            }
        } else if let colon = text.lastIndex(of: ":") {
            guard let number = Int(text[text.index(after: colon)...]) else { return nil }
            host = text[..<colon]
            port = number
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || "-._:".contains($0) }) else {
            return nil
        }
        self.host = String(host)
        self.port = port
    }
}

/// An `Origin` header: `scheme://host[:port]`. `null` (sandboxed frames, files) parses to nothing.
struct Origin: Equatable {
    let scheme: String
    let authority: Authority

    init?(_ text: String) {
        let lowered = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard let separator = lowered.range(of: "://") else { return nil }
        scheme = String(lowered[..<separator.lowerBound])
        guard !scheme.isEmpty, let authority = Authority(String(lowered[separator.upperBound...])) else { return nil }
        self.authority = authority
    }

    /// The port, the scheme's default when none is written.
    var port: Int? { authority.port ?? Self.defaultPorts[scheme] }

    var normalized: String {
        let host = authority.host.contains(":") ? "[\(authority.host)]" : authority.host
        return "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "")
    }

    /// Whether a page from this origin is the server's own page, reached as `host` (a `Host` without port means the
    /// scheme's default port).
    func isSameServer(as host: Authority) -> Bool {
        (scheme == "http" || scheme == "https") && authority.host == host.host
            && port == (host.port ?? Self.defaultPorts[scheme])
    }

    private static let defaultPorts = ["http": 80, "https": 443, "ws": 80, "wss": 443]
}

extension APIError {
    static func forbiddenHost(_ host: String) -> APIError {
        APIError(
            .forbidden, code: "forbidden_host",
            message: "Host \(host.prefix(200)) is not a name of this server (add it with --allowed-hosts).")
    }

    static func forbiddenOrigin(_ origin: String) -> APIError {
        APIError(
            .forbidden, code: "forbidden_origin",
            message: "Requests from the page at \(origin.prefix(200)) are not allowed (add it with --allowed-origins).")
    }
}
