import RingStormEngine

/// The `raw` protocol's client side: the user's own protocol. An optional first message (the
/// registration) awaited with its own framing, then requests from a template (`RawTemplate`), each
/// answered by one response found by a `RawFramer`, in order. Bytes that break the framing, a response
/// larger than the maximum, or bytes nothing asked for are a `protocol_error`.
final class RawClientProtocol: ClientProtocol {
    typealias Connection = RawFrameState

    private let first: RawTemplate?
    private let message: RawTemplate
    private let framer: RawFramer
    private let firstFramer: RawFramer
    /// The request as is, when it has no placeholder.
    private let constant: UnsafeMutableRawBufferPointer?
    private let scratch: UnsafeMutableRawBufferPointer

    init(_ configuration: LoadGenerator.Configuration) {
        let raw = configuration.raw
        first = raw.firstMessage.map(RawTemplate.init)
        message = RawTemplate(raw.message ?? [])
        let framing = raw.response ?? .size(1)
        framer = RawFramer(framing, maxSize: raw.maxResponseSize)
        firstFramer = RawFramer(raw.firstResponse ?? framing, maxSize: raw.maxResponseSize)
        scratch = .allocate(byteCount: max(message.maxSize, first?.maxSize ?? 0, 1), alignment: 16)
        if message.isConstant {
            let c = UnsafeMutableRawBufferPointer.allocate(byteCount: max(message.maxSize, 1), alignment: 16)
            _ = message.render(client: 0, sequence: 0, timestamp: 0, into: c)
            constant = UnsafeMutableRawBufferPointer(rebasing: c[0..<message.maxSize])
        } else {
            constant = nil
        }
    }

    deinit {
        scratch.deallocate()
        constant?.deallocate()
    }

    static func validate(_ c: LoadGenerator.Configuration) throws(LoadError) {
        let raw = c.raw
        guard c.firstMessageSize == 0, c.registrationSize == WireFormat.registerFrameSize else { throw .registrationSizeNotFor(.raw) }
        guard let message = raw.message, !message.isEmpty else { throw .rawMessageMissing }
        if let first = raw.firstMessage, first.isEmpty { throw .rawFirstMessageEmpty }
        guard raw.maxResponseSize >= 1 else { throw .rawMaxResponseSize(raw.maxResponseSize) }
        guard let response = raw.response else { throw .rawResponseFramingMissing }
        try check(response, first: false, max: raw.maxResponseSize)
        if let f = raw.firstResponse {
            guard raw.firstMessage != nil else { throw .rawFirstResponseWithoutFirstMessage }
            try check(f, first: true, max: raw.maxResponseSize)
        }
    }

    private static func check(_ framing: RawFraming, first: Bool, max: Int) throws(LoadError) {
        switch framing {
        case .size(let n):
            guard n >= 1 && n <= max else { throw .rawResponseSize(n, maximum: max, first: first) }
        case .delimiter(let d):
            guard !d.isEmpty else { throw .rawDelimiterEmpty(first: first) }
            guard d.count <= max else { throw .rawResponseSize(d.count, maximum: max, first: first) }
        case .lengthPrefix(let p):
            guard [1, 2, 4, 8].contains(p.width) else { throw .rawLengthPrefixWidth(p.width, first: first) }
            guard p.offset >= 0 && p.headerSize <= max else { throw .rawLengthPrefixOffset(p.offset, maximum: max - p.width, first: first) }
        }
    }

    static func sendsFirstMessage(_ configuration: LoadGenerator.Configuration) -> Bool { configuration.raw.firstMessage != nil }

    func newConnection(client: Int) -> RawFrameState { RawFrameState(client: client) }

    func firstMessage(client: Int, _ connection: inout RawFrameState) -> UnsafeRawBufferPointer {
        guard let first else { return UnsafeRawBufferPointer(rebasing: scratch[0..<0]) }
        let n = first.render(client: client, sequence: 0, timestamp: monotonicNanoseconds(), into: scratch)
        return UnsafeRawBufferPointer(rebasing: scratch[0..<n])
    }

    @inline(__always)
    func request(sequence: UInt64, timestamp: Int64, _ connection: inout RawFrameState) -> UnsafeRawBufferPointer {
        if let constant { return UnsafeRawBufferPointer(constant) }
        let n = message.render(client: connection.client, sequence: sequence, timestamp: timestamp, into: scratch)
        return UnsafeRawBufferPointer(rebasing: scratch[0..<n])
    }

    @inline(__always)
    func received(_ bytes: UnsafeRawBufferPointer, _ connection: inout RawFrameState,
                  expecting: ClientExpectation) -> ClientReceived {
        var result = ClientReceived()
        if expecting.firstMessage {
            switch firstFramer.next(bytes, at: 0, &connection) {
            case .needMore: break
            case .violation: result.failure = ClientProtocolFailure(phase: .register)
            case .response(let next):
                // Bytes past the answer came before any request was sent: nothing asked for them.
                if next < bytes.count { result.failure = ClientProtocolFailure(phase: .register) } else { result.firstMessageAnswered = true }
            }
            return result
        }
        var i = 0
        while i < bytes.count {
            guard result.responses < expecting.inFlight else {
                result.failure = ClientProtocolFailure(phase: .request)
                return result
            }
            switch framer.next(bytes, at: i, &connection) {
            case .needMore: return result
            case .violation:
                result.failure = ClientProtocolFailure(phase: .request)
                return result
            case .response(let next):
                result.responses += 1
                i = next
            }
        }
        return result
    }
}
