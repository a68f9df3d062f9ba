import FuzzSupport
import RingStorm

// Input: a configuration byte (bit 0: responses or requests; bit 1: HEAD requests), one byte for
// maxHeaderSize (32 + byte * 8) and one for maxBodySize (byte * 16; 255 means the default 1 TiB), then
// the bytes on the wire. Invariants:
// - every message ends past where it started and within the bytes given;
// - a response's status is 100...999, a request's 0;
// - the bytes parsed whole and in random chunks give the same messages (end offsets, statuses, close
//   flags) and the same final verdict.

enum Verdict: Equatable { case needMore, malformed, headersTooLarge, unframed }
struct Message: Equatable { var end: Int; var status: Int; var close: Bool }
struct Outcome: Equatable { var messages: [Message] = []; var verdict = Verdict.needMore }

func parse(_ stream: UnsafeRawBufferPointer, _ parser: HTTPParser, kind: HTTPParser.Kind,
           chunks: [Range<Int>]) -> Outcome {
    var state = HTTPParseState()
    var outcome = Outcome()
    for chunk in chunks {
        let bytes = UnsafeRawBufferPointer(rebasing: stream[chunk])
        var i = 0
        while i < bytes.count {
            switch parser.next(bytes, at: i, &state) {
            case .needMore:
                i = bytes.count
            case .malformed: outcome.verdict = .malformed; return outcome
            case .headersTooLarge: outcome.verdict = .headersTooLarge; return outcome
            case .unframed: outcome.verdict = .unframed; return outcome
            case .message(let next, let status, let close):
                check(next > i && next <= bytes.count, "a message ends at \(next), from \(i), in \(bytes.count) bytes")
                if kind == .request { check(status == 0, "a request with status \(status)") }
                else { check((100...999).contains(status), "a response with status \(status)") }
                check(!state.inMessage, "state still in a message after one ended")
                outcome.messages.append(Message(end: chunk.lowerBound + next, status: status, close: close))
                i = next
            }
        }
    }
    return outcome
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = InputReader(data, size)
    let config = input.byte()
    let kind: HTTPParser.Kind = config & 1 == 0 ? .response : .request
    let maxHeaderSize = 32 + Int(input.byte()) * 8
    let bodyByte = input.byte()
    let maxBodySize: Int64 = bodyByte == 255 ? 1 << 40 : Int64(bodyByte) * 16
    let parser = HTTPParser(kind, maxHeaderSize: maxHeaderSize, maxBodySize: maxBodySize,
                            headRequests: config & 2 != 0)
    let stream = input.rest
    let whole = parse(stream, parser, kind: kind, chunks: [0..<stream.count])
    var random = FuzzRandom(hashing: stream)
    for _ in 0..<2 {
        let split = parse(stream, parser, kind: kind, chunks: randomChunks(count: stream.count, &random))
        check(split == whole, "split parse differs: \(split) vs whole \(whole)")
    }
    return 0
}

@_cdecl("FuzzHTTPParser_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
