/// What `--protocol raw` sends and how it recognises an answer: the user's own protocol, given as
/// bytes with placeholders (`RawTemplate`) and a response framing (`RawFraming`). Part of
/// `LoadGenerator.Configuration` (`raw`), so worker processes get it serialized like the rest.
public struct RawOptions: Sendable, Codable, Equatable {
    /// Sent first on every connection and awaited (phase `register`); nil: none.
    public var firstMessage: [UInt8]?
    /// Sent as each request.
    public var message: [UInt8]?
    /// How each response ends.
    public var response: RawFraming?
    /// How the first message's answer ends; nil: like `response`.
    public var firstResponse: RawFraming?
    /// The largest response (or first answer) accepted; a longer one is a `protocol_error`.
    public var maxResponseSize: Int = RawOptions.defaultMaxResponseSize

    public static let defaultMaxResponseSize = 1 << 20

    public init() {}

    /// Whether any raw-only value is set (for refusing them with another protocol).
    public var isSet: Bool { firstMessage != nil || message != nil || response != nil || firstResponse != nil }
}

/// How a response ends.
public enum RawFraming: Sendable, Codable, Equatable, CustomStringConvertible {
    /// Exactly this many bytes.
    case size(Int)
    /// Up to and including these bytes (the first occurrence).
    case delimiter([UInt8])
    /// A header with a length field.
    case lengthPrefix(RawLengthPrefix)

    public var description: String {
        switch self {
        case .size(let n): "\(n) bytes"
        case .delimiter(let d): "up to \(RawBytes.escaped(d))"
        case .lengthPrefix(let p): "\(p.width)-byte \(p.bigEndian ? "big" : "little")-endian length at offset \(p.offset)"
                + (p.includesHeader ? " (counting the header)" : "")
        }
    }
}

/// A length field: `width` bytes at `offset` from the start of the response. The length counts the
/// bytes after the field, or, with `includesHeader`, the whole response (`offset + width` header bytes
/// included).
public struct RawLengthPrefix: Sendable, Codable, Equatable {
    public var width: Int
    public var bigEndian: Bool
    public var offset: Int
    public var includesHeader: Bool

    public init(width: Int, bigEndian: Bool = true, offset: Int = 0, includesHeader: Bool = false) {
        self.width = width
        self.bigEndian = bigEndian
        self.offset = offset
        self.includesHeader = includesHeader
    }

    /// Bytes up to the end of the length field.
    public var headerSize: Int { offset + width }
}

/// Text with C-style escapes, as `--message` and friends take it.
public enum RawBytes {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        /// A backslash at the end.
        case danglingBackslash
        /// `\` followed by a character that is no escape.
        case unknownEscape(Character)
        /// `\x` not followed by two hex digits.
        case badHex(String)

        public var description: String {
            switch self {
            case .danglingBackslash: "a backslash at the end escapes nothing; write \\\\ for a backslash"
            case .unknownEscape(let c): "unknown escape \\\(c); use \\r \\n \\t \\0 \\\\ or \\xHH"
            case .badHex(let s): "\\x\(s) needs two hex digits, e.g. \\x00"
            }
        }
    }

    /// `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH`; every other character is its UTF-8 bytes.
    public static func parse(_ text: String) throws(ParseError) -> [UInt8] {
        var out: [UInt8] = []
        var chars = Array(text.unicodeScalars)[...]
        while let c = chars.popFirst() {
            guard c == "\\" else {
                out.append(contentsOf: Array(String(c).utf8))
                continue
            }
            guard let e = chars.popFirst() else { throw .danglingBackslash }
            switch e {
            case "r": out.append(13)
            case "n": out.append(10)
            case "t": out.append(9)
            case "0": out.append(0)
            case "\\": out.append(92)
            case "x":
                let hex = String(String.UnicodeScalarView(chars.prefix(2)))
                guard hex.count == 2, let v = UInt8(hex, radix: 16) else { throw .badHex(hex) }
                chars = chars.dropFirst(2)
                out.append(v)
            default: throw .unknownEscape(Character(e))
            }
        }
        return out
    }

    /// The bytes as text again, escaped where not printable ASCII.
    public static func escaped(_ bytes: [UInt8]) -> String {
        var s = ""
        for b in bytes {
            switch b {
            case 13: s += "\\r"
            case 10: s += "\\n"
            case 9: s += "\\t"
            case 92: s += "\\\\"
            case 32..<127: s.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let h = String(b, radix: 16)
                s += "\\x" + (h.count == 1 ? "0" + h : h)
            }
        }
        return s
    }
}
