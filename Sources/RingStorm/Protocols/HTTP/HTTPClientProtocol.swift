import RingStormEngine

/// The `http` protocol's client side: HTTP/1.1 keep-alive. Every request is the same bytes, built once
/// from `HTTPOptions`; responses are parsed incrementally (`HTTPParser`) and matched to requests in
/// order (pipelining keeps order). Each final response counts by its status class
/// (`ClientReceived.http`); a malformed one, one past the limits, or one nothing asked for is a
/// `protocol_error`. No registration.
final class HTTPClientProtocol: ClientProtocol {
    typealias Connection = HTTPParseState

    private let message: UnsafeMutableRawBufferPointer
    private let parser: HTTPParser

    init(_ configuration: LoadGenerator.Configuration) {
        let http = configuration.http
        let bytes = http.request(host: configuration.target.description)
        message = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        message.copyBytes(from: bytes)
        parser = HTTPParser(.response, maxHeaderSize: http.maxHeaderSize, maxBodySize: Int64(http.maxBodySize),
                            headRequests: http.method == "HEAD")
    }

    deinit { message.deallocate() }

    static func validate(_ c: LoadGenerator.Configuration) throws(LoadError) {
        guard c.firstMessageSize == 0 else { throw .firstMessageNotFor(.http) }
        guard c.registrationSize == WireFormat.registerFrameSize else { throw .registrationSizeNotFor(.http) }
        let h = c.http
        guard !h.method.isEmpty, h.method.utf8.allSatisfy(HTTPParser.isTokenByte) else { throw .httpMethod(h.method) }
        guard h.path.hasPrefix("/") || h.path == "*", !h.path.utf8.contains(where: { $0 <= 32 || $0 == 127 }) else { throw .httpPath(h.path) }
        for header in h.headers {
            let parts = header.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.allSatisfy(HTTPParser.isTokenByte),
                  !header.utf8.contains(where: { $0 == 13 || $0 == 10 }) else { throw .httpHeader(header) }
            let name = parts[0].lowercased()
            guard name != "content-length" && name != "transfer-encoding" else { throw .httpHeaderSetByLoad(header) }
        }
        guard h.maxHeaderSize >= 64 && h.maxBodySize >= 0 else { throw .httpLimits(header: h.maxHeaderSize, body: h.maxBodySize) }
    }

    static func sendsFirstMessage(_ configuration: LoadGenerator.Configuration) -> Bool { false }

    func newConnection(client: Int) -> HTTPParseState { HTTPParseState() }

    func firstMessage(client: Int, _ connection: inout HTTPParseState) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: message[0..<0]) }

    @inline(__always)
    func request(sequence: UInt64, timestamp: Int64, _ connection: inout HTTPParseState) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(message)
    }

    @inline(__always)
    func received(_ bytes: UnsafeRawBufferPointer, _ connection: inout HTTPParseState,
                  expecting: ClientExpectation) -> ClientReceived {
        var result = ClientReceived()
        var i = 0
        while i < bytes.count {
            guard result.responses < expecting.inFlight else {
                result.failure = ClientProtocolFailure(phase: .request)
                return result
            }
            switch parser.next(bytes, at: i, &connection) {
            case .needMore: return result
            case .malformed, .headersTooLarge, .unframed:
                result.failure = ClientProtocolFailure(phase: .request)
                return result
            case .message(let next, let status, let close):
                result.responses += 1
                if close { result.peerCloses = true }
                result.http.record(status: status)
                i = next
            }
        }
        return result
    }
}
