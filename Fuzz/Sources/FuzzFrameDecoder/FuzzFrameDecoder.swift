import FuzzSupport
import RingStorm

// Input: one byte choosing maxFrameSize (17 + byte * 67, so 17...17102: small enough that the fuzzer
// reaches it), then the byte stream. Invariants:
// - no frame longer than maxFrameSize (type + body), and the body fits its type;
// - the decoder never holds more than maxFrameSize bytes;
// - the stream fed whole and fed in random chunks gives the same frames, the same error, the same
//   finish() result;
// - after an error every feed rethrows it; reset() makes the decoder usable again.

/// A frame copied out of the callback (its views die with it).
struct Decoded: Equatable {
    var type: FrameType
    var a: UInt64 = 0
    var b: UInt64 = 0
    var bytes: [UInt8] = []
    /// type + body, as on the wire.
    var length: Int

    init(_ frame: Frame) {
        type = frame.type
        switch frame {
        case .register(let id), .registered(let id):
            a = id
            length = 1 + WireFormat.registerBodySize
        case .request(let s, let t, let p), .response(let s, let t, let p):
            a = s; b = t; bytes = Array(p)
            length = 1 + WireFormat.requestFixedBodySize + p.count
        case .error(let code, let text):
            a = UInt64(code); bytes = Array(text)
            length = 1 + WireFormat.errorFixedBodySize + text.count
        }
    }
}

struct Outcome: Equatable {
    var frames: [Decoded] = []
    var error: ProtocolError?
    var finishError: ProtocolError?
}

func decode(_ stream: UnsafeRawBufferPointer, maxFrameSize: Int, chunks: [Range<Int>]) -> Outcome {
    var decoder = FrameDecoder(maxFrameSize: maxFrameSize)
    var outcome = Outcome()
    for chunk in chunks {
        let before = outcome.frames.count
        do {
            let n = try decoder.feed(UnsafeRawBufferPointer(rebasing: stream[chunk])) { frame in
                let d = Decoded(frame)
                check(d.length <= maxFrameSize, "a \(d.length)-byte frame from a decoder of at most \(maxFrameSize)")
                if let most = d.type.maximumBodySize { check(d.length - 1 <= most, "\(d.type) body too long") }
                check(d.length - 1 >= d.type.minimumBodySize, "\(d.type) body too short")
                outcome.frames.append(d)
            }
            check(n == outcome.frames.count - before, "feed returned \(n), delivered \(outcome.frames.count - before)")
        } catch {
            outcome.error = error
            check(decoder.failure == error, "failure not kept")
            // Every later feed rethrows the same error and delivers nothing.
            do {
                try decoder.feed(UnsafeRawBufferPointer(rebasing: stream[chunk])) { _ in check(false, "frame after failure") }
                check(false, "feed after failure did not throw")
            } catch { check(error == outcome.error, "a different error after failure: \(error)") }
            break
        }
        check(decoder.bufferedByteCount <= maxFrameSize, "buffering \(decoder.bufferedByteCount) > \(maxFrameSize)")
    }
    if outcome.error == nil {
        do { try decoder.finish() } catch { outcome.finishError = error }
    }
    decoder.reset()
    check(decoder.failure == nil && !decoder.hasPartialFrame && decoder.bufferedByteCount == 0, "reset left state")
    return outcome
}

/// The frames are what the stream holds, back to back from its start: each one's length prefix, type
/// and fields re-encoded are the stream's bytes (a REGISTER may carry bytes past its client id, which the
/// decoder ignores: there only the prefix, type and id are compared), and no frame's length on the wire
/// is above maxFrameSize.
func checkAgainstWire(_ frames: [Decoded], _ stream: UnsafeRawBufferPointer, maxFrameSize: Int) {
    var at = 0
    for (n, f) in frames.enumerated() {
        check(stream.count - at >= 5, "frame \(n) past the end of the stream")
        let wireLength = Int(stream[at]) << 24 | Int(stream[at + 1]) << 16 | Int(stream[at + 2]) << 8 | Int(stream[at + 3])
        check(wireLength <= maxFrameSize, "frame \(n) is \(wireLength) bytes on the wire, maximum \(maxFrameSize)")
        check(at + 4 + wireLength <= stream.count, "frame \(n) runs past the stream")
        var bytes: [UInt8] = []
        func be(_ v: UInt64, _ width: Int) { for i in (0..<width).reversed() { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        be(UInt64(f.length), 4)
        bytes.append(f.type.rawValue)
        switch f.type {
        case .register, .registered: be(f.a, 8)
        case .request, .response: be(f.a, 8); be(f.b, 8); bytes += f.bytes
        case .error: be(f.a, 2); bytes += f.bytes
        }
        let wire = Array(stream[at..<(at + 4 + wireLength)])
        if f.type == .register {
            check(wireLength >= f.length && Array(wire[4...]).starts(with: bytes[4...]), "REGISTER \(n) differs from the wire")
        } else {
            check(wire == bytes, "frame \(n) (\(f.type)) re-encoded differs from the wire")
        }
        at += 4 + wireLength
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = InputReader(data, size)
    let maxFrameSize = 1 + WireFormat.requestFixedBodySize + Int(input.byte()) * 67
    let stream = input.rest
    let whole = decode(stream, maxFrameSize: maxFrameSize, chunks: [0..<stream.count])
    checkAgainstWire(whole.frames, stream, maxFrameSize: maxFrameSize)
    var random = FuzzRandom(hashing: stream)
    for _ in 0..<2 {
        let split = decode(stream, maxFrameSize: maxFrameSize, chunks: randomChunks(count: stream.count, &random))
        check(split == whole, "a split stream decodes differently: \(split.frames.count) frames, \(String(describing: split.error)) vs \(whole.frames.count), \(String(describing: whole.error))")
    }
    return 0
}

@_cdecl("FuzzFrameDecoder_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
