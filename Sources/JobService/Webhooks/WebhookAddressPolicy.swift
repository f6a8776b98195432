import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Which webhook URLs the service calls. Only `http`/`https` URLs with a host; and, unless private addresses are
/// allowed (`--webhook-allow-private on`), none whose host is or resolves to a loopback, private, link-local,
/// shared, multicast or reserved address: a webhook must not become a way into the server's own network (SSRF).
///
/// The check runs at submit (a literal address or `localhost`) and again before every attempt (every address the
/// name resolves to). The connection then resolves the name again itself; a name that changes its answer between the
/// two (DNS rebinding) is not caught.
public struct WebhookAddressPolicy: Sendable {
    public var allowPrivate: Bool

    public init(allowPrivate: Bool) {
        self.allowPrivate = allowPrivate
    }

    /// Why a submit's `url` is refused (422), or `nil` when it may be used.
    func refusalAtSubmit(_ text: String) -> APIError? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = url.host, !host.isEmpty, url.user == nil, url.password == nil, text.utf8.count <= 2048
        else {
            return APIError(
                .unprocessableContent, code: "invalid_parameter",
                message: "webhook_url must be an http:// or https:// URL with a host (at most 2048 characters).",
                field: "webhook_url")
        }
        guard !allowPrivate else { return nil }
        let bare = Self.bareHost(host)
        if bare.lowercased() == "localhost" || bare.lowercased().hasSuffix(".localhost")
            || (Self.isNumeric(bare) && Self.isPrivate(bare))
        {
            return APIError(
                .unprocessableContent, code: "webhook_url_refused",
                message:
                    "webhook_url points at a loopback, private or link-local address, which this server does not call (--webhook-allow-private).",
                field: "webhook_url")
        }
        return nil
    }

    /// Why a delivery to `url` is refused now, or `nil` when it may go ahead: every address its host resolves to
    /// must be public.
    func refusalBeforeSending(_ url: URL) -> String? {
        guard !allowPrivate else { return nil }
        guard let host = url.host.map(Self.bareHost) else { return "the URL has no host" }
        let addresses = Self.isNumeric(host) ? [host] : Self.resolve(host)
        guard !addresses.isEmpty else { return nil } // unresolvable: the attempt fails and is retried
        if let blocked = addresses.first(where: Self.isPrivate) {
            return "refused: \(host) resolves to \(blocked), a loopback, private or link-local address"
        }
        return nil
    }

    private static func bareHost(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    static func isNumeric(_ host: String) -> Bool {
        ipv4Bytes(host) != nil || ipv6Bytes(host) != nil
    }

    /// Whether a numeric address is one a webhook must not reach (non-numeric text counts as private).
    static func isPrivate(_ address: String) -> Bool {
        if let v4 = ipv4Bytes(address) { return isPrivateIPv4(v4) }
        guard let v6 = ipv6Bytes(address) else { return true }
        if v6[0..<10].allSatisfy({ $0 == 0 }) && v6[10] == 0xff && v6[11] == 0xff {
            return isPrivateIPv4(Array(v6[12..<16])) // ::ffff:a.b.c.d
        }
        if v6.allSatisfy({ $0 == 0 }) { return true } // ::
        if v6[0..<15].allSatisfy({ $0 == 0 }) && v6[15] == 1 { return true } // ::1
        if v6[0] & 0xfe == 0xfc { return true } // fc00::/7 unique local
        if v6[0] == 0xfe && v6[1] & 0xc0 == 0x80 { return true } // fe80::/10 link-local
        if v6[0] == 0xff { return true } // multicast
        if v6[0..<12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] {
            return isPrivateIPv4(Array(v6[12..<16])) // 64:ff9b::/96 NAT64
        }
        return false
    }

    private static func isPrivateIPv4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1]) {
        case (0, _), (10, _), (127, _): true
        case (100, 64...127): true // shared address space (carrier NAT)
        case (169, 254): true
        case (172, 16...31): true
        case (192, 168): true
        case (192, 0) where b[2] == 0: true
        case (198, 18...19): true
        case (224...255, _): true // multicast, reserved, broadcast
        default: false
        }
    }

    private static func ipv4Bytes(_ text: String) -> [UInt8]? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    private static func ipv6Bytes(_ text: String) -> [UInt8]? {
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    /// Every address `host` resolves to (empty when it does not resolve).
    private static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(
                current.pointee.ai_addr, current.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0,
                NI_NUMERICHOST) == 0
            {
                addresses.append(
                    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            entry = current.pointee.ai_next
        }
        return addresses
    }
}
