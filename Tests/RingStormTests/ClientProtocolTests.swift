import Testing
@testable import RingStorm
import RingStormEngine

/// The client protocols on their own: what bytes they send and what they make of what comes back.
@Suite struct ClientProtocolTests {
    func configuration(_ wire: LoadGenerator.WireProtocol) -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        c.wireProtocol = wire
        c.messageSize = 8
        c.clientIDBase = 100
        return c
    }

    func frames(_ encode: (UnsafeMutableRawBufferPointer) -> Int) -> [UInt8] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        let n = encode(buffer)
        return Array(buffer[0..<n])
    }

    @Test func theOneSwitchNamesEachProtocolsClient() {
        #expect(ObjectIdentifier(LoadGenerator.WireProtocol.ringstorm.client) == ObjectIdentifier(RingStormClientProtocol.self))
        #expect(ObjectIdentifier(LoadGenerator.WireProtocol.echo.client) == ObjectIdentifier(EchoClientProtocol.self))
        #expect(ObjectIdentifier(LoadGenerator.WireProtocol.raw.client) == ObjectIdentifier(RawClientProtocol.self))
        #expect(ObjectIdentifier(LoadGenerator.WireProtocol.http.client) == ObjectIdentifier(HTTPClientProtocol.self))
    }

    @Test func ringstormRegistersAndMatchesResponsesInOrder() {
        let client = RingStormClientProtocol(configuration(.ringstorm))
        var state = client.newConnection(client: 0)
        let register = Array(client.firstMessage(client: 7, &state))
        #expect(register == frames { FrameEncoder.encodeRegister(clientID: 107, into: $0) })

        let registered = frames { FrameEncoder.encodeRegistered(clientID: 107, into: $0) }
        var got = registered.withUnsafeBytes {
            client.received($0, &state, expecting: ClientExpectation(client: 7, firstMessage: true, inFlight: 0, oldestSequence: 0))
        }
        #expect(got.firstMessageAnswered && got.responses == 0 && got.failure == nil)

        // Two responses in one read, split from a third's start: 2 answered, the rest kept for later.
        var bytes = frames { FrameEncoder.encodeResponse(sequence: 5, timestamp: 1, payloadSize: 8, into: $0) }
        bytes += frames { FrameEncoder.encodeResponse(sequence: 6, timestamp: 2, payloadSize: 8, into: $0) }
        let third = frames { FrameEncoder.encodeResponse(sequence: 7, timestamp: 3, payloadSize: 8, into: $0) }
        bytes += third.prefix(5)
        got = bytes.withUnsafeBytes {
            client.received($0, &state, expecting: ClientExpectation(client: 7, firstMessage: false, inFlight: 3, oldestSequence: 5))
        }
        #expect(got.responses == 2 && got.failure == nil)
        got = Array(third.dropFirst(5)).withUnsafeBytes {
            client.received($0, &state, expecting: ClientExpectation(client: 7, firstMessage: false, inFlight: 1, oldestSequence: 7))
        }
        #expect(got.responses == 1 && got.failure == nil)

        // Out of sequence: a protocol error.
        got = frames { FrameEncoder.encodeResponse(sequence: 9, timestamp: 1, payloadSize: 8, into: $0) }.withUnsafeBytes {
            client.received($0, &state, expecting: ClientExpectation(client: 7, firstMessage: false, inFlight: 1, oldestSequence: 8))
        }
        #expect(got.responses == 0 && got.failure != nil && got.failure?.serverReason == nil)

        // The server's ERROR: a protocol error with its reason.
        var other = client.newConnection(client: 0)
        got = frames { FrameEncoder.encodeError(code: ErrorCode.frameTooLarge.rawValue, text: "too big", into: $0) }.withUnsafeBytes {
            client.received($0, &other, expecting: ClientExpectation(client: 7, firstMessage: false, inFlight: 1, oldestSequence: 0))
        }
        #expect(got.failure?.serverReason == "frame_too_large")
    }

    @Test func echoAnswersByByteCount() {
        var c = configuration(.echo)
        c.firstMessageSize = 3
        let client = EchoClientProtocol(c)
        var state = client.newConnection(client: 0)
        #expect(client.firstMessage(client: 0, &state).count == 3)
        #expect(client.request(sequence: 0, timestamp: 0, &state).count == 8)
        func feed(_ n: Int, first: Bool, inFlight: Int) -> ClientReceived {
            [UInt8](repeating: 0, count: n).withUnsafeBytes {
                client.received($0, &state, expecting: ClientExpectation(client: 0, firstMessage: first, inFlight: inFlight, oldestSequence: 0))
            }
        }
        #expect(!feed(2, first: true, inFlight: 0).firstMessageAnswered)
        #expect(feed(1, first: true, inFlight: 0).firstMessageAnswered)
        #expect(feed(12, first: false, inFlight: 2).responses == 1)   // one and a half
        #expect(feed(4, first: false, inFlight: 1).responses == 1)
        let over = feed(9, first: false, inFlight: 1)                   // more back than was sent
        #expect(over.failure?.phase == .request)
    }
}
