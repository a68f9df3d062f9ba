import RingStormEngine

/// The `echo` protocol's client side: optionally a first message of `firstMessageSize` bytes awaited
/// back whole (its "registration"), then messages of `messageSize` bytes, each answered when as many
/// bytes have come back (TCP keeps order). More back than was sent is a protocol error.
final class EchoClientProtocol: ClientProtocol {
    /// Bytes of the first message echoed so far, then the `EchoMatcher` of the messages.
    struct Connection {
        var firstMessageBytes = 0
        var matcher: EchoMatcher
    }

    private let firstMessageSize: Int
    private let messageSize: Int
    private let message: UnsafeMutableRawBufferPointer
    private let first: UnsafeMutableRawBufferPointer

    init(_ configuration: LoadGenerator.Configuration) {
        firstMessageSize = configuration.firstMessageSize
        messageSize = max(configuration.messageSize, 1)
        message = .allocate(byteCount: messageSize, alignment: 16)
        _ = FrameEncoder.encodeEcho(size: messageSize, into: message)
        first = .allocate(byteCount: max(firstMessageSize, 1), alignment: 16)
        _ = FrameEncoder.encodeEcho(size: firstMessageSize, into: first)
    }

    deinit {
        message.deallocate()
        first.deallocate()
    }

    static func validate(_ c: LoadGenerator.Configuration) throws(LoadError) {
        guard c.messageSize >= 1 else { throw .messageSizeTooSmall(c.messageSize, minimum: 1, protocol: .echo) }
        guard c.registrationSize == WireFormat.registerFrameSize else { throw .registrationSizeNotFor(.echo) }
    }

    static func sendsFirstMessage(_ configuration: LoadGenerator.Configuration) -> Bool { configuration.firstMessageSize > 0 }

    func newConnection(client: Int) -> Connection { Connection(matcher: EchoMatcher(messageSize: messageSize)) }

    func firstMessage(client: Int, _ connection: inout Connection) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(first) }

    @inline(__always)
    func request(sequence: UInt64, timestamp: Int64, _ connection: inout Connection) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(message)
    }

    @inline(__always)
    func received(_ bytes: UnsafeRawBufferPointer, _ connection: inout Connection,
                  expecting: ClientExpectation) -> ClientReceived {
        var result = ClientReceived()
        var remaining = bytes.count
        if expecting.firstMessage {
            let take = min(firstMessageSize - connection.firstMessageBytes, remaining)
            connection.firstMessageBytes += take
            remaining -= take
            guard connection.firstMessageBytes == firstMessageSize else { return result }
            if remaining > 0 {
                // Bytes beyond the first message before any request was sent: not an echo.
                result.failure = ClientProtocolFailure(phase: .register)
                return result
            }
            result.firstMessageAnswered = true
            return result
        }
        let messages = connection.matcher.received(remaining)
        if messages > expecting.inFlight || (messages == expecting.inFlight && connection.matcher.hasPartialMessage) {
            // More came back than was sent.
            result.failure = ClientProtocolFailure(phase: .request)
            return result
        }
        result.responses = messages
        return result
    }
}
