import FuzzSupport
import RingStorm

// Input: two bytes of message size (1...65536), then byte counts (one byte each, 0...255, as received
// chunks). Invariants: messages completed == total bytes / size, partialBytes == total % size, in any
// split; partialBytes stays in 0..<messageSize.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = InputReader(data, size)
    let messageSize = (Int(input.byte()) << 8 | Int(input.byte())) + 1
    var matcher = EchoMatcher(messageSize: messageSize)
    var total = 0
    var messages = 0
    for b in input.rest {
        total += Int(b)
        messages += matcher.received(Int(b))
        check(matcher.partialBytes >= 0 && matcher.partialBytes < messageSize, "partialBytes \(matcher.partialBytes) out of range")
        check(matcher.hasPartialMessage == (matcher.partialBytes > 0), "hasPartialMessage disagrees")
    }
    check(messages == total / messageSize, "\(messages) messages from \(total) bytes of \(messageSize)")
    check(matcher.partialBytes == total % messageSize, "partial \(matcher.partialBytes)")
    // All at once gives the same.
    var whole = EchoMatcher(messageSize: messageSize)
    check(whole.received(total) == messages && whole == matcher, "one chunk differs")
    matcher.reset()
    check(matcher == EchoMatcher(messageSize: messageSize), "reset leaves state")
    return 0
}

@_cdecl("FuzzEchoMatcher_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
