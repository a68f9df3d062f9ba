import FuzzSupport
// Compiles RingStorm's own DurationParsing.swift (symlinked beside this file): `DurationParsing` is
// `package`, not visible to another package.

// Input: the text typed, as UTF-8 (invalid bytes repaired). Invariants:
// - nanoseconds(text): a result is never negative; format(result) parses back to the same value, and
//   format(parse(format(x))) == format(x);
// - bytes(text): a result is never negative; "\(n)" and "\(n)b" parse back to n;
// - a failure's message quotes the input;
// - the first 8 bytes as an Int64 (made non-negative): parse(format(x)) == x for any duration.
/// Whether `message` begins with `'text'`, compared as UTF-8 (String.contains compares characters, and a
/// combining mark at the start of `text` merges with the quote into one character).
func quotes(_ message: String, _ text: String) -> Bool {
    Array(message.utf8).starts(with: [UInt8(ascii: "'")] + Array(text.utf8) + [UInt8(ascii: "'")])
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let text = String(decoding: bytes, as: UTF8.self)

    do {
        let ns = try DurationParsing.nanoseconds(text)
        check(ns >= 0, "negative duration \(ns) from '\(text)'")
        let formatted = DurationParsing.format(nanoseconds: ns)
        let again = try? DurationParsing.nanoseconds(formatted)
        check(again == ns, "'\(text)' = \(ns) ns, formatted '\(formatted)', reads back as \(again)")
    } catch {
        check(error.input == text && quotes(error.message, text), "message does not quote the input")
    }

    do {
        let n = try DurationParsing.bytes(text)
        check(n >= 0, "negative size \(n) from '\(text)'")
        let plain = try? DurationParsing.bytes("\(n)")
        let withB = try? DurationParsing.bytes("\(n)b")
        check(plain == n && withB == n, "size \(n) reads back as \(String(describing: plain)), \(String(describing: withB))")
    } catch {
        check(error.input == text && quotes(error.message, text), "message does not quote the input")
    }

    if size >= 8 {
        var raw: UInt64 = 0
        for i in 0..<8 { raw = raw << 8 | UInt64(data[i]) }
        let x = Int64(bitPattern: raw & UInt64(Int64.max))
        let formatted = DurationParsing.format(nanoseconds: x)
        do {
            let back = try DurationParsing.nanoseconds(formatted)
            check(back == x, "format(\(x)) = '\(formatted)' reads back as \(back)")
        } catch {
            fail("format(\(x)) = '\(formatted)' does not parse: \(error)")
        }
    }
    return 0
}

@_cdecl("FuzzDurations_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
