/// What a server that broke the protocol sent, when it names the protocol it speaks: counted on the
/// failure path only (the bytes that ended a connection with `protocol_error`), so the hint after a run
/// where nothing parsed can say which `--protocol` to try.
public struct PeerSignals: Codable, Sendable, Equatable {
    /// Bytes that began with an HTTP status line (`HTTP/1.`), seen by a client not speaking HTTP.
    public var httpStatusLines = 0
    /// Bytes that began with our own request line (`GET / HTTP/1.1`), seen by the HTTP client: an echo.
    public var echoedRequests = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case httpStatusLines = "http_status_lines"
        case echoedRequests = "echoed_requests"
    }

    /// Counts what `bytes` (ending a connection with a protocol error) say about the server.
    /// `requestLine`: the HTTP client's request line start (`GET /`), nil for other protocols.
    mutating func record(_ bytes: UnsafeRawBufferPointer, requestLine: [UInt8]?) {
        if let requestLine {
            if !requestLine.isEmpty && bytes.starts(with: requestLine) { echoedRequests += 1 }
        } else if bytes.starts(with: HTTPParser.httpPrefix) {
            httpStatusLines += 1
        }
    }

    /// The server most likely on the other end, by what was counted; nil when nothing says.
    var likelyProtocol: LoadGenerator.WireProtocol? {
        if httpStatusLines > 0 { return .http }
        if echoedRequests > 0 { return .echo }
        return nil
    }
}
