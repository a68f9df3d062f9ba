/// What `--protocol http` sends: one request, built once (`HTTPClientProtocol`) and sent as is.
public struct HTTPOptions: Sendable, Codable, Equatable {
    public var method = "GET"
    public var path = "/"
    /// `Name: value` lines, as given (a `Host` here replaces the one made from the target).
    public var headers: [String] = []
    public var body: [UInt8] = []
    /// The largest status line plus headers accepted from the server (larger: `protocol_error`).
    public var maxHeaderSize = 64 * 1024
    /// The largest response body accepted.
    public var maxBodySize = 1 << 20

    public init() {}

    /// Whether any HTTP-only value differs from its default (for refusing them with another protocol).
    public var isSet: Bool { self != HTTPOptions() }

    /// The request's bytes, for `host` (the target as `HOST:PORT`).
    public func request(host: String) -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\n"
        if !headers.contains(where: { $0.lowercased().hasPrefix("host:") }) { head += "Host: \(host)\r\n" }
        for h in headers { head += h + "\r\n" }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}
