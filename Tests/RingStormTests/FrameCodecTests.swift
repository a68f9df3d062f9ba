import Testing
@testable import RingStorm

/// A decoded frame copied out of the decoder's view, to compare.
enum OwnedFrame: Equatable, CustomStringConvertible {
    case register(UInt64)
    case registered(UInt64)
    case request(UInt64, UInt64, [UInt8])
    case response(UInt64, UInt64, [UInt8])
    case error(UInt16, [UInt8])

    init(_ frame: Frame) {
        switch frame {
        case .register(let id): self = .register(id)
        case .registered(let id): self = .registered(id)
        case .request(let s, let t, let p): self = .request(s, t, Array(p))
        case .response(let s, let t, let p): self = .response(s, t, Array(p))
        case .error(let c, let text): self = .error(c, Array(text))
        }
    }

    var description: String {
        switch self {
        case .register(let id): "REGISTER(\(id))"
        case .registered(let id): "REGISTERED(\(id))"
        case .request(let s, let t, let p): "REQUEST(\(s), \(t), \(p.count) bytes)"
        case .response(let s, let t, let p): "RESPONSE(\(s), \(t), \(p.count) bytes)"
        case .error(let c, let t): "ERROR(\(c), \(String(decoding: t, as: UTF8.self)))"
        }
    }
}

/// Feeds `chunks` in order into one decoder and returns the frames and the error, if any.
func decode(_ chunks: [[UInt8]], maxFrameSize: Int = WireFormat.defaultMaxFrameSize, finish: Bool = false)
    -> (frames: [OwnedFrame], error: ProtocolError?)
{
    var decoder = FrameDecoder(maxFrameSize: maxFrameSize)
    var frames: [OwnedFrame] = []
    for chunk in chunks {
        var thrown: ProtocolError?
        chunk.withUnsafeBytes { bytes in
            do throws(ProtocolError) {
                try decoder.feed(bytes) { frames.append(OwnedFrame($0)) }
            } catch { thrown = error }
        }
        if let thrown { return (frames, thrown) }
    }
    if finish {
        do throws(ProtocolError) { try decoder.finish() } catch { return (frames, error) }
    }
    return (frames, nil)
}

func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    var bytes: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        bytes.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// A stream of every frame type, as bytes and as the frames it holds.
func sampleStream() -> (bytes: [UInt8], frames: [OwnedFrame]) {
    var buffer = FrameBuffer(capacity: 64)
    buffer.appendRegister(clientID: 0x0102_0304_0506_0708)
    buffer.appendRegistered(clientID: 42)
    buffer.appendRequest(sequence: 1, timestamp: 1_700_000_000_123_456_789, payloadSize: 40)
    buffer.appendRequest(sequence: 2, timestamp: 99, payloadSize: 0)
    let payload: [UInt8] = Array(0..<70)
    payload.withUnsafeBytes { buffer.appendResponse(sequence: 1, timestamp: 7, payload: $0) }
    buffer.appendError(code: ErrorCode.notRegistered.rawValue, text: "REQUEST before REGISTER ✓")
    buffer.appendRequest(sequence: .max, timestamp: .max, payloadSize: 3)
    let bytes = buffer.withBytes { Array($0) }
    let pattern = { (n: Int) in (0..<n).map { PayloadPattern.byte(at: $0) } }
    let frames: [OwnedFrame] = [
        .register(0x0102_0304_0506_0708),
        .registered(42),
        .request(1, 1_700_000_000_123_456_789, pattern(40)),
        .request(2, 99, []),
        .response(1, 7, payload),
        .error(4, Array("REQUEST before REGISTER ✓".utf8)),
        .request(.max, .max, pattern(3)),
    ]
    return (bytes, frames)
}

@Suite("ringstorm frames")
struct FrameCodecTests {
    @Test("the documented examples encode to the documented bytes")
    func documentedBytes() {
        var buffer = FrameBuffer()
        buffer.appendRegister(clientID: 42)
        #expect(buffer.withBytes { Array($0) } == hex("00000009 01 000000000000002a"))
        buffer.removeAll()
        buffer.appendRegistered(clientID: 42)
        #expect(buffer.withBytes { Array($0) } == hex("00000009 02 000000000000002a"))
        buffer.removeAll()
        buffer.appendRequest(sequence: 7, timestamp: 0x0000_1234_5678_9ABC, payloadSize: 4)
        #expect(buffer.withBytes { Array($0) } == hex("00000015 03 0000000000000007 0000123456789abc 61626364"))
        buffer.removeAll()
        Array("abcd".utf8).withUnsafeBytes {
            buffer.appendResponse(sequence: 7, timestamp: 0x0000_1234_5678_9ABC, payload: $0)
        }
        #expect(buffer.withBytes { Array($0) } == hex("00000015 04 0000000000000007 0000123456789abc 61626364"))
        buffer.removeAll()
        buffer.appendError(code: ErrorCode.notRegistered.rawValue, text: "no")
        #expect(buffer.withBytes { Array($0) } == hex("00000005 05 0004 6e6f"))
    }

    @Test("encoder and decoder round-trip every frame type")
    func roundTrip() {
        let (bytes, frames) = sampleStream()
        let result = decode([bytes], finish: true)
        #expect(result.error == nil)
        #expect(result.frames == frames)
    }

    @Test("the encode functions write into a caller's buffer and return the size")
    func encodeIntoBuffer() {
        var storage = [UInt8](repeating: 0xEE, count: 64)
        let n = storage.withUnsafeMutableBytes {
            FrameEncoder.encodeRequest(sequence: 3, timestamp: 4, payloadSize: 10, into: $0)
        }
        #expect(n == 31)
        #expect(n == WireFormat.requestFrameSize(payloadSize: 10))
        #expect(storage[31] == 0xEE)
        let result = decode([Array(storage[0..<n])])
        #expect(result.frames == [.request(3, 4, (0..<10).map { PayloadPattern.byte(at: $0) })])
        let m = storage.withUnsafeMutableBytes { FrameEncoder.encodeRegister(clientID: 9, into: $0) }
        #expect(m == WireFormat.registerFrameSize)
    }

    @Test("a stream split in two at every byte decodes identically")
    func splitAtEveryByte() {
        let (bytes, frames) = sampleStream()
        for cut in 0...bytes.count {
            let result = decode([Array(bytes[..<cut]), Array(bytes[cut...])], finish: true)
            #expect(result.error == nil, "cut at \(cut)")
            #expect(result.frames == frames, "cut at \(cut)")
        }
    }

    @Test("a stream split in three at every pair of bytes decodes identically")
    func splitAtEveryPair() {
        let (bytes, frames) = sampleStream()
        var failures = 0
        for first in 0...bytes.count {
            for second in first...bytes.count {
                let result = decode([Array(bytes[..<first]), Array(bytes[first..<second]), Array(bytes[second...])], finish: true)
                if result.error != nil || result.frames != frames { failures += 1 }
            }
        }
        #expect(failures == 0)
    }

    @Test("a stream fed one byte at a time decodes identically")
    func byteByByte() {
        let (bytes, frames) = sampleStream()
        let result = decode(bytes.map { [$0] }, finish: true)
        #expect(result.error == nil)
        #expect(result.frames == frames)
    }

    @Test("many frames in one chunk are all delivered, in order")
    func manyFramesInOneChunk() {
        var buffer = FrameBuffer(capacity: 64)
        for i in 0..<5000 { buffer.appendRequest(sequence: UInt64(i), timestamp: UInt64(i) * 3, payloadSize: i % 50) }
        let bytes = buffer.withBytes { Array($0) }
        var decoder = FrameDecoder()
        var sequences: [UInt64] = []
        var ok = true
        let count = bytes.withUnsafeBytes { chunk in
            try? decoder.feed(chunk) { frame in
                guard case .request(let s, let t, let p) = frame else { ok = false; return }
                if t != s * 3 || p.count != Int(s) % 50 || !PayloadPattern.matches(p) { ok = false }
                sequences.append(s)
            }
        }
        #expect(count == 5000)
        #expect(ok)
        #expect(sequences == (0..<5000).map(UInt64.init))
        #expect(decoder.bufferedByteCount == 0)
        #expect(!decoder.hasPartialFrame)
    }

    @Test("large frames split across many chunks: only the split frame is buffered")
    func largeSplitFrames() {
        var buffer = FrameBuffer()
        for i in 0..<20 { buffer.appendRequest(sequence: UInt64(i), timestamp: 0, payloadSize: 60_000) }
        let bytes = buffer.withBytes { Array($0) }
        var decoder = FrameDecoder()
        var received = 0
        var maxBuffered = 0
        var start = 0
        while start < bytes.count {
            let end = min(start + 4096, bytes.count)
            Array(bytes[start..<end]).withUnsafeBytes { chunk in
                _ = try? decoder.feed(chunk) { frame in
                    if case .request(_, _, let p) = frame, p.count == 60_000, PayloadPattern.matches(p) { received += 1 }
                }
            }
            maxBuffered = max(maxBuffered, decoder.bufferedByteCount)
            start = end
        }
        #expect(received == 20)
        #expect(maxBuffered <= 1 + 16 + 60_000)
        #expect(decoder.bufferedByteCount == 0)
        #expect(decoder.failure == nil)
    }

    @Test("a frame of exactly the maximum size is accepted, whole or split")
    func exactlyMaximum() {
        var buffer = FrameBuffer()
        buffer.appendRequest(sequence: 5, timestamp: 6, payloadSize: WireFormat.maxPayloadSize())
        let bytes = buffer.withBytes { Array($0) }
        #expect(bytes.count == 4 + WireFormat.defaultMaxFrameSize)
        #expect(decode([bytes]).frames.count == 1)
        let cut = bytes.count / 2
        let split = decode([Array(bytes[..<cut]), Array(bytes[cut...])], finish: true)
        #expect(split.error == nil)
        #expect(split.frames.count == 1)
    }

    @Test("random chunking of a random frame stream decodes identically")
    func randomChunking() {
        var rng = SplitMix(seed: 42)
        var buffer = FrameBuffer()
        var expected: [OwnedFrame] = []
        for i in 0..<400 {
            switch rng.next() % 4 {
            case 0:
                buffer.appendRegister(clientID: UInt64(i))
                expected.append(.register(UInt64(i)))
            case 1:
                let n = Int(rng.next() % 3000)
                buffer.appendRequest(sequence: UInt64(i), timestamp: rng.next(), payloadSize: n)
                expected.append(.request(UInt64(i), 0, []))
            case 2:
                let payload = (0..<Int(rng.next() % 100)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                payload.withUnsafeBytes { buffer.appendResponse(sequence: UInt64(i), timestamp: 1, payload: $0) }
                expected.append(.response(UInt64(i), 1, payload))
            default:
                buffer.appendError(code: UInt16(i), text: String(repeating: "x", count: Int(rng.next() % 40)))
                expected.append(.error(UInt16(i), []))
            }
        }
        let bytes = buffer.withBytes { Array($0) }
        let whole = decode([bytes], finish: true)
        #expect(whole.error == nil)
        #expect(whole.frames.count == expected.count)
        #expect(zip(whole.frames, expected).allSatisfy { $0.0.description.prefix(8) == $0.1.description.prefix(8) })
        for _ in 0..<50 {
            var chunks: [[UInt8]] = []
            var start = 0
            while start < bytes.count {
                let size = Int(rng.next() % (rng.next() % 2 == 0 ? 16 : 5000)) + 1
                let end = min(start + size, bytes.count)
                chunks.append(Array(bytes[start..<end]))
                start = end
            }
            let result = decode(chunks, finish: true)
            #expect(result.error == nil)
            #expect(result.frames == whole.frames)
        }
    }

    @Test("garbage never crashes the decoder nor makes it hold more than the maximum")
    func garbage() {
        var rng = SplitMix(seed: 7)
        for round in 0..<300 {
            let maxFrameSize = round % 2 == 0 ? WireFormat.defaultMaxFrameSize : 100
            var decoder = FrameDecoder(maxFrameSize: maxFrameSize)
            var stopped = false
            for _ in 0..<20 where !stopped {
                // Mostly small lengths so that some garbage decodes as frames.
                var chunk = (0..<Int(rng.next() % 64 + 1)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if rng.next() % 2 == 0 && chunk.count >= 5 {
                    chunk[0] = 0; chunk[1] = 0; chunk[2] = UInt8(rng.next() % 2); chunk[4] = UInt8(rng.next() % 6 + 1)
                }
                chunk.withUnsafeBytes { bytes in
                    do throws(ProtocolError) { try decoder.feed(bytes) { _ in } } catch { stopped = true }
                }
                #expect(decoder.bufferedByteCount <= maxFrameSize)
            }
        }
    }

    @Test("the decoder state is small")
    func stateSize() {
        #expect(MemoryLayout<FrameDecoder>.stride <= 32)
        #expect(MemoryLayout<EchoMatcher>.size == 16)
    }
}

@Suite("ringstorm frame errors")
struct FrameErrorTests {
    @Test("a length above the maximum is frameTooLarge, before any body byte arrives")
    func oversized() {
        let result = decode([hex("00010001 03")])
        #expect(result.error == .frameTooLarge(length: 65537, maximum: 65536))
        #expect(result.error?.code == .frameTooLarge)

        // The largest length there is, with the prefix split: still nothing buffered.
        var decoder = FrameDecoder()
        var error: ProtocolError?
        for byte: UInt8 in [0xFF, 0xFF, 0xFF, 0xFF] {
            [byte].withUnsafeBytes { chunk in
                do throws(ProtocolError) { try decoder.feed(chunk) { _ in } } catch let e { if error == nil { error = e } }
            }
        }
        #expect(error == .frameTooLarge(length: Int(UInt32.max), maximum: 65536))
        #expect(decoder.bufferedByteCount == 0)

        // A configured maximum.
        var small = FrameBuffer()
        small.appendRequest(sequence: 1, timestamp: 1, payloadSize: 100)
        let frame = small.withBytes { Array($0) }
        #expect(decode([frame], maxFrameSize: 116).error == .frameTooLarge(length: 117, maximum: 116))
        #expect(decode([frame], maxFrameSize: 117).frames.count == 1)
    }

    @Test("a zero length is malformed")
    func zeroLength() {
        let result = decode([hex("00000000 01")])
        #expect(result.error == .zeroLength)
        #expect(result.error?.code == .malformedFrame)
        #expect(decode([hex("0000"), hex("0000")]).error == .zeroLength)
    }

    @Test("an unknown type is unknownType, for 0 and above 5")
    func unknownType() {
        #expect(decode([hex("00000009 07 0000000000000001")]).error == .unknownType(7))
        #expect(decode([hex("00000001 00")]).error == .unknownType(0))
        #expect(decode([hex("00000009"), hex("ff")]).error == .unknownType(255))
        #expect(ProtocolError.unknownType(7).code == .unknownType)
    }

    @Test("a body too short or too long for its type is malformed")
    func badBodies() {
        #expect(decode([hex("00000005 01 00000000")]).error == .bodyTooShort(type: .register, bodySize: 4, minimum: 8))
        #expect(decode([hex("0000000a 02 000000000000000000")]).error == .bodyTooLong(type: .registered, bodySize: 9, maximum: 8))
        #expect(decode([hex("00000010 03 00000000000000000000000000000000")]).error
            == .bodyTooShort(type: .request, bodySize: 15, minimum: 16))
        #expect(decode([hex("00000009 04 0000000000000001")]).error == .bodyTooShort(type: .response, bodySize: 8, minimum: 16))
        #expect(decode([hex("00000002 05 00")]).error == .bodyTooShort(type: .error, bodySize: 1, minimum: 2))
        // Reported when the type byte arrives, before the body does.
        #expect(decode([hex("00000005"), hex("01")]).error == .bodyTooShort(type: .register, bodySize: 4, minimum: 8))
        #expect(ProtocolError.bodyTooShort(type: .register, bodySize: 4, minimum: 8).code == .malformedFrame)
    }

    @Test("a stream ending inside a frame is truncated")
    func truncated() {
        let (bytes, frames) = sampleStream()
        // Cut inside the third frame (REQUEST, 61 bytes, starting at 26).
        let result = decode([Array(bytes[..<40])], finish: true)
        #expect(result.frames == Array(frames[..<2]))
        #expect(result.error == .truncated(received: 14, expected: 61))
        // Cut inside a length prefix.
        #expect(decode([hex("0000")], finish: true).error == .truncated(received: 2, expected: 0))
        // Cut right after a whole prefix.
        #expect(decode([hex("00000009")], finish: true).error == .truncated(received: 4, expected: 13))
        // Whole frames only: no error.
        #expect(decode([Array(bytes[..<26])], finish: true).error == nil)
        #expect(ProtocolError.truncated(received: 1, expected: 2).code == .malformedFrame)
    }

    @Test("frames before the bad one are delivered, and the decoder stops at it")
    func stopsAtFirstError() {
        var decoder = FrameDecoder()
        var frames: [OwnedFrame] = []
        let stream = hex("00000009 01 0000000000000001") + hex("00000001 09") + hex("00000009 01 0000000000000002")
        var first: ProtocolError?
        stream.withUnsafeBytes { chunk in
            do throws(ProtocolError) { try decoder.feed(chunk) { frames.append(OwnedFrame($0)) } } catch { first = error }
        }
        #expect(frames == [.register(1)])
        #expect(first == .unknownType(9))
        #expect(decoder.failure == .unknownType(9))
        var again: ProtocolError?
        hex("00000009 01 0000000000000003").withUnsafeBytes { chunk in
            do throws(ProtocolError) { try decoder.feed(chunk) { frames.append(OwnedFrame($0)) } } catch { again = error }
        }
        #expect(again == .unknownType(9))
        #expect(frames == [.register(1)])
        decoder.reset()
        #expect(decoder.failure == nil)
    }

    @Test("a handler's own ProtocolError stops the decoder")
    func handlerError() {
        var decoder = FrameDecoder()
        var seen = 0
        var caught: ProtocolError?
        let stream = hex("00000011 03 0000000000000001 0000000000000002") + hex("00000009 01 0000000000000001")
        stream.withUnsafeBytes { chunk in
            do throws(ProtocolError) {
                try decoder.feed(chunk) { (frame: Frame) throws(ProtocolError) in
                    seen += 1
                    if case .request = frame { throw .notRegistered }
                }
            } catch { caught = error }
        }
        #expect(seen == 1)
        #expect(caught == .notRegistered)
        #expect(caught?.code == .notRegistered)
        #expect(decoder.failure == .notRegistered)
    }

    @Test("every error has a message naming the problem")
    func messages() {
        #expect(ProtocolError.frameTooLarge(length: 70000, maximum: 65536).message.contains("70000"))
        #expect(ProtocolError.unknownType(9).message.contains("9"))
        #expect(ProtocolError.bodyTooShort(type: .register, bodySize: 4, minimum: 8).message == "REGISTER body is 4 bytes, shorter than the 8 it needs")
        #expect(ProtocolError.notRegistered.message == "REQUEST before REGISTER")
        #expect(ErrorCode.registerTimeout.rawValue == 5)
        #expect(ErrorCode.allCases.map(\.rawValue) == [1, 2, 3, 4, 5, 6])
    }

    @Test("an ERROR frame's text is cut at a character boundary to fit")
    func errorTextCut() {
        var storage = [UInt8](repeating: 0, count: 12)
        // "é" is 2 bytes: 5 bytes of room hold "ab" + "é" but not the next "é".
        let n = storage.withUnsafeMutableBytes { FrameEncoder.encodeError(code: 2, text: "abéé", into: $0) }
        #expect(n == 11)
        let result = decode([Array(storage[..<n])])
        #expect(result.frames == [.error(2, Array("abé".utf8))])
        var text: String?
        Array(storage[..<n]).withUnsafeBytes { chunk in
            var d = FrameDecoder()
            _ = try? d.feed(chunk) { text = $0.errorText }
        }
        #expect(text == "abé")
    }
}

@Suite("echo protocol")
struct EchoTests {
    @Test("echoes are matched by byte count across any split")
    func matcher() {
        var matcher = EchoMatcher(messageSize: 64)
        #expect(matcher.received(10) == 0)
        #expect(matcher.hasPartialMessage)
        #expect(matcher.received(54) == 1)
        #expect(!matcher.hasPartialMessage)
        #expect(matcher.received(64 * 3 + 5) == 3)
        #expect(matcher.partialBytes == 5)
        #expect(matcher.received(59 + 64) == 2)
        #expect(matcher.partialBytes == 0)
    }

    @Test("echo messages are the payload pattern")
    func echoPayload() {
        var buffer = FrameBuffer(capacity: 64)
        buffer.appendEcho(size: 5000)
        buffer.appendEcho(size: 3)
        #expect(buffer.count == 5003)
        #expect(buffer.capacity >= 5003)
        buffer.withBytes { bytes in
            #expect(PayloadPattern.matches(UnsafeRawBufferPointer(rebasing: bytes[0..<5000])))
            #expect(PayloadPattern.matches(UnsafeRawBufferPointer(rebasing: bytes[5000...])))
            #expect(!PayloadPattern.matches(UnsafeRawBufferPointer(rebasing: bytes[1..<5000])))
        }
        #expect(Array(PayloadPattern.period[0..<4]) == Array("abcd".utf8))
    }

    @Test("a frame buffer reuses its storage")
    func bufferReuse() {
        var buffer = FrameBuffer(capacity: 64)
        for _ in 0..<10 { buffer.appendRequest(sequence: 1, timestamp: 2, payloadSize: 100) }
        let capacity = buffer.capacity
        for _ in 0..<100 {
            buffer.removeAll()
            for _ in 0..<10 { buffer.appendRequest(sequence: 1, timestamp: 2, payloadSize: 100) }
        }
        #expect(buffer.capacity == capacity)
        #expect(buffer.count == 1210)
    }
}

/// A small deterministic generator for the randomized tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
