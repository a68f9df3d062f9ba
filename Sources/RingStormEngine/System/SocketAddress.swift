import Glibc

/// An IPv4 or IPv6 socket address, stored inline so it can live in flat per-connection arrays and be
/// handed to the kernel by pointer.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    var storage = sockaddr_storage()

    public init() {}

    /// Parses `HOST:PORT`, `[V6]:PORT`, or a bare host (port 0). Hosts are numeric: RingStorm only ever
    /// targets addresses on this machine, and a resolver would hide which address was meant.
    public init(parsing text: String, defaultPort: UInt16 = 0) throws(AddressError) {
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw AddressError(text, "missing ']' after an IPv6 address") }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()) else { throw AddressError(text, "the port must be a number from 0 to 65535") }
                port = p
            }
        } else if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon {
            guard let p = UInt16(host[host.index(after: colon)...]) else { throw AddressError(text, "the port must be a number from 0 to 65535") }
            port = p
            host = host[..<colon]
        }
        if host == "localhost" { host = "127.0.0.1" }
        if host.isEmpty { throw AddressError(text, "no host: write e.g. 127.0.0.1:7000 or [::1]:7000") }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, String(host), &v4) == 1 {
            self.init(ipv4: v4, port: port)
        } else if inet_pton(AF_INET6, String(host), &v6) == 1 {
            self.init(ipv6: v6, port: port)
        } else {
            throw AddressError(text, "'\(host)' is not a numeric IPv4 or IPv6 address (names are not resolved)")
        }
    }

    public init(ipv4: in_addr, port: UInt16) {
        withUnsafeMutableBytes(of: &storage) { raw in
            let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
            sin.pointee.sin_family = sa_family_t(AF_INET)
            sin.pointee.sin_port = port.bigEndian
            sin.pointee.sin_addr = ipv4
        }
    }

    public init(ipv6: in6_addr, port: UInt16) {
        withUnsafeMutableBytes(of: &storage) { raw in
            let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
            sin6.pointee.sin6_family = sa_family_t(AF_INET6)
            sin6.pointee.sin6_port = port.bigEndian
            sin6.pointee.sin6_addr = ipv6
        }
    }

    public var family: Int32 { Int32(storage.ss_family) }
    public var isIPv6: Bool { family == AF_INET6 }

    var length: socklen_t {
        socklen_t(isIPv6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
    }

    public var port: UInt16 {
        get {
            withUnsafeBytes(of: storage) { raw in
                isIPv6 ? UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
                       : UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
            }
        }
        set {
            let v6 = isIPv6
            withUnsafeMutableBytes(of: &storage) { raw in
                if v6 { raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port = newValue.bigEndian }
                else { raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port = newValue.bigEndian }
            }
        }
    }

    /// The host part alone, e.g. `127.0.0.1` or `::1`.
    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: storage) { raw in
            if isIPv6 {
                var a = raw.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
            } else {
                var a = raw.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
            }
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The IPv4 address as a host-order integer (for ranges of source addresses).
    public var ipv4Value: UInt32? {
        guard !isIPv6 else { return nil }
        return withUnsafeBytes(of: storage) { UInt32(bigEndian: $0.load(as: sockaddr_in.self).sin_addr.s_addr) }
    }

    public init(ipv4Value: UInt32, port: UInt16) {
        self.init(ipv4: in_addr(s_addr: ipv4Value.bigEndian), port: port)
    }

    /// The address as the socket API takes it, for code that calls `bind`/`connect` itself.
    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
    }

    /// Room for the kernel to write an address into (`getsockname`, `accept`), and its length.
    public mutating func withMutableSockAddr<R>(_ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> R) -> R {
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutableBytes(of: &storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len) }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        withUnsafeBytes(of: a.storage) { ra in withUnsafeBytes(of: b.storage) { rb in ra.elementsEqual(rb) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: storage) { hasher.combine(bytes: $0) }
    }
}

/// An address the user typed that RingStorm cannot use, with what to write instead.
public struct AddressError: Error, CustomStringConvertible, Sendable {
    public let text: String
    public let problem: String
    init(_ text: String, _ problem: String) { self.text = text; self.problem = problem }
    public var description: String { "cannot use address '\(text)': \(problem)" }
}
