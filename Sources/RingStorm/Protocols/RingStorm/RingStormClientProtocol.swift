import RingStormEngine

/// The `ringstorm` protocol's client side: REGISTER (padded to `registrationSize`) first, then REQUESTs
/// with a sequence number and timestamp; REGISTERED and in-order RESPONSEs answer them, an ERROR frame
/// ends the connection with the server's reason.
final class RingStormClientProtocol: ClientProtocol {
    typealias Connection = FrameDecoder

    private let clientIDBase: UInt64
    private let registrationSize: Int
    private let payloadSize: Int
    private let maxFrameSize: Int
    private let scratch: UnsafeMutableRawBufferPointer

    init(_ configuration: LoadGenerator.Configuration) {
        clientIDBase = configuration.clientIDBase
        registrationSize = configuration.registrationSize
        payloadSize = configuration.messageSize
        maxFrameSize = max(configuration.maxFrameSize, 1 + WireFormat.requestFixedBodySize)
        scratch = .allocate(byteCount: max(WireFormat.requestFrameSize(payloadSize: payloadSize), registrationSize,
                                           WireFormat.registerFrameSize), alignment: 16)
    }

    deinit { scratch.deallocate() }

    static func validate(_ c: LoadGenerator.Configuration) throws(LoadError) {
        let most = WireFormat.maxPayloadSize(maxFrameSize: c.maxFrameSize)
        guard c.messageSize >= 0 else { throw .messageSizeTooSmall(c.messageSize, minimum: 0, protocol: .ringstorm) }
        guard c.messageSize <= most else { throw .messageSizeTooLarge(c.messageSize, maxFrameSize: c.maxFrameSize, most: most) }
        guard c.firstMessageSize == 0 else { throw .firstMessageNotFor(.ringstorm) }
        guard c.registrationSize >= WireFormat.registerFrameSize && c.registrationSize <= c.maxFrameSize + WireFormat.lengthSize else {
            throw .registrationSize(c.registrationSize, minimum: WireFormat.registerFrameSize, maximum: c.maxFrameSize + WireFormat.lengthSize)
        }
    }

    static func sendsFirstMessage(_ configuration: LoadGenerator.Configuration) -> Bool { true }

    func newConnection(client: Int) -> FrameDecoder { FrameDecoder(maxFrameSize: maxFrameSize) }

    func firstMessage(client: Int, _ connection: inout FrameDecoder) -> UnsafeRawBufferPointer {
        let n = FrameEncoder.encodeRegister(clientID: clientIDBase + UInt64(client), frameSize: registrationSize, into: scratch)
        return UnsafeRawBufferPointer(rebasing: scratch[0..<n])
    }

    @inline(__always)
    func request(sequence: UInt64, timestamp: Int64, _ connection: inout FrameDecoder) -> UnsafeRawBufferPointer {
        let n = FrameEncoder.encodeRequest(sequence: sequence, timestamp: UInt64(timestamp), payloadSize: payloadSize, into: scratch)
        return UnsafeRawBufferPointer(rebasing: scratch[0..<n])
    }

    @inline(__always)
    func received(_ bytes: UnsafeRawBufferPointer, _ decoder: inout FrameDecoder,
                  expecting: ClientExpectation) -> ClientReceived {
        var result = ClientReceived()
        let expectedID = clientIDBase + UInt64(expecting.client)
        do throws(ProtocolError) {
            try decoder.feed(bytes) { frame throws(ProtocolError) in
                switch frame {
                case .registered(let id):
                    guard expecting.firstMessage, !result.firstMessageAnswered, id == expectedID else {
                        throw .unexpectedType(.registered)
                    }
                    result.firstMessageAnswered = true
                case .response(let sequence, _, _):
                    // Only requests sent before these bytes came can be answered by them, in order.
                    guard !expecting.firstMessage, result.responses < expecting.inFlight,
                          sequence == expecting.oldestSequence &+ UInt64(result.responses) else {
                        throw .unexpectedType(.response)
                    }
                    result.responses += 1
                case .error(let code, _):
                    result.failure = ClientProtocolFailure(serverReason: ErrorCode(rawValue: code)?.description ?? "code_\(code)")
                    throw .unexpectedType(.error)
                case .register, .request:
                    throw .unexpectedType(frame.type)
                }
            }
        } catch {
            if result.failure == nil { result.failure = ClientProtocolFailure() }
        }
        return result
    }
}
