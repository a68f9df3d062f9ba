/// A value a user typed that could not be read, with a message naming the problem and the fix, e.g.
/// `'5x' is not a duration: unknown unit 'x'; write e.g. 500ms, 5s, 2m`.
public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was typed.
    public let input: String
    /// The whole message.
    public let message: String

    public init(input: String, message: String) {
        self.input = input
        self.message = message
    }

    public var description: String { message }
}

/// Reads durations and byte sizes the way users type them on a command line.
///
/// Durations: a number with a unit, `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`: `250us`, `500ms`, `1.5s`,
/// `2m`, `1h`; parts can be chained, `1m30s`; a plain number is seconds (`5` = 5 s, `0.25` = 250 ms).
///
/// Sizes: a number with an optional binary unit, `k`/`KiB`/`KB`, `m`/`MiB`/`MB`, `g`/`GiB`/`GB` (all
/// powers of 1024, any case) and an optional `b`/`B`: `64`, `4k`, `64KiB`, `1m`, `1.5k` (= 1536).
package enum DurationParsing {
    static let durationExamples = "write e.g. 500ms, 5s, 2m"
    static let sizeExamples = "write e.g. 64, 4k, 64KiB, 1m"

    /// Nanoseconds in `text`, e.g. `"1.5s"` → 1_500_000_000.
    public static func nanoseconds(_ text: String) throws(ParseError) -> Int64 {
        func fail(_ problem: String) -> ParseError {
            ParseError(input: text, message: "'\(text)' is not a duration: \(problem); \(durationExamples)")
        }
        let trimmed = text.trimmingSpaces
        var scanner = NumberScanner(Array(trimmed.utf8))
        if scanner.atEnd { throw fail(text.isEmpty ? "it is empty" : "it has no number") }
        var total: Int64 = 0
        var first = true
        while !scanner.atEnd {
            if scanner.peek == UInt8(ascii: "-") { throw fail("a duration cannot be negative") }
            guard let number = scanner.number() else {
                throw fail(first ? "it does not start with a number" : "'\(scanner.rest)' has no number before its unit")
            }
            let unitText = scanner.letters()
            let unit: Int64
            switch unitText {
            case "ns": unit = 1
            case "us", "µs", "μs": unit = 1_000  // micro sign and Greek mu
            case "ms": unit = 1_000_000
            case "s": unit = 1_000_000_000
            case "m", "min": unit = 60_000_000_000
            case "h": unit = 3_600_000_000_000
            case "":
                guard first && scanner.atEnd else {
                    throw fail("'\(number.text)' has no unit (use ns, us, ms, s, m or h)")
                }
                unit = 1_000_000_000
            default:
                throw fail("unknown unit '\(unitText)' (use ns, us, ms, s, m or h)")
            }
            guard let part = number.scaled(by: unit) else { throw fail("it is too long (the most is about 292 years)") }
            let (sum, overflow) = total.addingReportingOverflow(part)
            if overflow { throw fail("it is too long (the most is about 292 years)") }
            total = sum
            first = false
        }
        return total
    }

    /// Bytes in `text`, e.g. `"64KiB"` → 65536.
    public static func bytes(_ text: String) throws(ParseError) -> Int {
        func fail(_ problem: String) -> ParseError {
            ParseError(input: text, message: "'\(text)' is not a size: \(problem); \(sizeExamples)")
        }
        let trimmed = text.trimmingSpaces
        var scanner = NumberScanner(Array(trimmed.utf8))
        if scanner.atEnd { throw fail(text.isEmpty ? "it is empty" : "it has no number") }
        if scanner.peek == UInt8(ascii: "-") { throw fail("a size cannot be negative") }
        guard let number = scanner.number() else { throw fail("it does not start with a number") }
        let unitText = scanner.letters()
        guard scanner.atEnd else { throw fail("unexpected '\(scanner.rest)' after the unit") }
        let unit: Int64
        switch unitText {
        case "", "b": unit = 1
        case "k", "kb", "kib": unit = 1 << 10
        case "m", "mb", "mib": unit = 1 << 20
        case "g", "gb", "gib": unit = 1 << 30
        case "t", "tb", "tib": unit = 1 << 40
        default: throw fail("unknown unit '\(unitText)' (use k, m or g, or KiB, MiB, GiB)")
        }
        guard number.isWhole(times: unit) else {
            throw fail("it is not a whole number of bytes")
        }
        guard let value = number.scaled(by: unit), value <= Int64(Int.max) else { throw fail("it is too large") }
        return Int(value)
    }

    /// A duration in the largest unit that shows it exactly: 1_500_000_000 → "1500ms", 2_000_000_000 →
    /// "2s", 120_000_000_000 → "2m". `nanoseconds(format(x)) == x`.
    public static func format(nanoseconds: Int64) -> String {
        if nanoseconds == 0 { return "0s" }
        for (unit, name) in [(Int64(3_600_000_000_000), "h"), (60_000_000_000, "m"), (1_000_000_000, "s"),
                             (1_000_000, "ms"), (1_000, "us")] where nanoseconds % unit == 0 {
            return "\(nanoseconds / unit)\(name)"
        }
        return "\(nanoseconds)ns"
    }
}

/// A decimal number as typed: integer digits and fraction digits, kept exact.
private struct TypedNumber {
    var integer: Int64
    var fraction: Int64
    var fractionDigits: Int
    var text: String
    var overflowed: Bool

    /// `self × unit`, rounded to the nearest integer; nil on overflow.
    func scaled(by unit: Int64) -> Int64? {
        if overflowed { return nil }
        let (whole, overflow) = integer.multipliedReportingOverflow(by: unit)
        if overflow { return nil }
        guard fractionDigits > 0 else { return whole }
        // fraction / 10^digits × unit, rounded: at most 18 digits are kept, so this fits in 128 bits.
        let scale = Int64(pow10(fractionDigits))
        let product = unit.multipliedFullWidth(by: fraction)
        let (quotient, remainder) = scale.dividingFullWidth(product)
        let rounded = quotient + (remainder * 2 >= scale ? 1 : 0)
        let (sum, overflow2) = whole.addingReportingOverflow(rounded)
        return overflow2 ? nil : sum
    }

    /// Whether `self × unit` is an integer.
    func isWhole(times unit: Int64) -> Bool {
        guard fractionDigits > 0 else { return true }
        let scale = Int64(pow10(fractionDigits))
        let product = unit.multipliedFullWidth(by: fraction)
        return scale.dividingFullWidth(product).remainder == 0
    }

    private func pow10(_ n: Int) -> Int64 {
        var r: Int64 = 1
        for _ in 0..<n { r *= 10 }
        return r
    }
}

private struct NumberScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { index >= bytes.count }
    var peek: UInt8? { atEnd ? nil : bytes[index] }
    var rest: String { String(decoding: bytes[index...], as: UTF8.self) }

    /// Digits, optionally with one `.` and more digits (`5`, `1.5`, `.5`, `5.`); nil if no digit.
    mutating func number() -> TypedNumber? {
        let start = index
        var integer: Int64 = 0
        var fraction: Int64 = 0
        var fractionDigits = 0
        var digits = 0
        var overflow = false
        while let c = peek, c >= 0x30 && c <= 0x39 {
            let (m, o1) = integer.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(c - 0x30))
            overflow = overflow || o1 || o2
            integer = a
            digits += 1
            index += 1
        }
        if peek == UInt8(ascii: ".") {
            index += 1
            while let c = peek, c >= 0x30 && c <= 0x39 {
                if fractionDigits < 18 {
                    fraction = fraction * 10 + Int64(c - 0x30)
                    fractionDigits += 1
                }
                digits += 1
                index += 1
            }
        }
        guard digits > 0 else {
            index = start
            return nil
        }
        return TypedNumber(integer: integer, fraction: fraction, fractionDigits: fractionDigits,
                           text: String(decoding: bytes[start..<index], as: UTF8.self), overflowed: overflow)
    }

    /// A run of non-digit, non-space characters (the unit), lowercased; spaces around it are skipped.
    mutating func letters() -> String {
        while peek == UInt8(ascii: " ") { index += 1 }
        let start = index
        while let c = peek, !(c >= 0x30 && c <= 0x39), c != UInt8(ascii: "."), c != UInt8(ascii: " ") { index += 1 }
        let unit = String(decoding: bytes[start..<index], as: UTF8.self).lowercased()
        while peek == UInt8(ascii: " ") { index += 1 }
        return unit
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
