import FuzzSupport
import RingStorm

// Input: a framing byte (low 2 bits: 0 fixed size, 1 delimiter, 2/3 length prefix), a byte for
// maxSize (1 + byte * 4), then framing parameters, then the bytes on the wire:
// - size: one byte, size = 1 + byte (capped at maxSize);
// - delimiter: one byte of length (1...4), then that many delimiter bytes;
// - length prefix: one byte: width (1, 2, 4 or 8), big-endian, includesHeader; one byte: offset (0...3).
// Invariants: every response ends past where it started, within the bytes; a fixed-size response is
// exactly that size; no response is larger than maxSize; a delimited response ends with its delimiter
// (and holds it only there); parsing whole and in random chunks gives the same responses and verdict.

struct Outcome: Equatable { var ends: [Int] = []; var violation = false }

func frame(_ stream: UnsafeRawBufferPointer, _ framer: RawFramer, chunks: [Range<Int>]) -> Outcome {
    var state = RawFrameState(client: 7)
    var outcome = Outcome()
    for chunk in chunks {
        let bytes = UnsafeRawBufferPointer(rebasing: stream[chunk])
        var i = 0
        while i < bytes.count {
            switch framer.next(bytes, at: i, &state) {
            case .needMore: i = bytes.count
            case .violation: outcome.violation = true; return outcome
            case .response(let next):
                check(next > i && next <= bytes.count, "a response ends at \(next), from \(i), in \(bytes.count) bytes")
                check(!state.inResponse && state.client == 7, "state not reset after a response")
                outcome.ends.append(chunk.lowerBound + next)
                i = next
            }
        }
    }
    return outcome
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = InputReader(data, size)
    let kind = input.byte() & 3
    let maxSize = 1 + Int(input.byte()) * 4
    let framing: RawFraming
    switch kind {
    case 0:
        framing = .size(min(1 + Int(input.byte()), maxSize))
    case 1:
        let n = 1 + Int(input.byte() % 4)
        framing = .delimiter((0..<n).map { _ in input.byte() })
    default:
        let p = input.byte()
        let width = [1, 2, 4, 8][Int(p & 3)]
        framing = .lengthPrefix(RawLengthPrefix(width: width, bigEndian: p & 4 != 0, offset: Int(input.byte() % 4),
                                                includesHeader: p & 8 != 0))
    }
    let framer = RawFramer(framing, maxSize: maxSize)
    let stream = input.rest
    let whole = frame(stream, framer, chunks: [0..<stream.count])
    var start = 0
    for end in whole.ends {
        let length = end - start
        check(length <= maxSize, "a \(length)-byte response, maxSize \(maxSize) (\(framing))")
        switch framing {
        case .size(let n): check(length == n, "a \(length)-byte response of fixed size \(n)")
        case .delimiter(let d):
            let response = Array(stream[start..<end])
            check(response.count >= d.count && Array(response.suffix(d.count)) == d, "response does not end with the delimiter")
            // The first occurrence ends it: no earlier full match.
            if response.count > d.count {
                for at in 0...(response.count - d.count - 1) {
                    check(Array(response[at..<at + d.count]) != d, "the delimiter occurs earlier, at \(at)")
                }
            }
        case .lengthPrefix(let p): check(length >= p.headerSize, "a response shorter than its header")
        }
        start = end
    }
    var random = FuzzRandom(hashing: stream)
    for _ in 0..<2 {
        let split = frame(stream, framer, chunks: randomChunks(count: stream.count, &random))
        check(split == whole, "split framing differs: \(split) vs whole \(whole) (\(framing), maxSize \(maxSize))")
    }
    return 0
}

@_cdecl("FuzzRawFramer_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
