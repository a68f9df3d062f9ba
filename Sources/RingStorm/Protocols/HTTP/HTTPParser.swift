import Glibc

/// Where one connection is inside the HTTP/1.1 message being received: a few integers, kept per
/// connection in flat storage. Nothing is buffered: the parser reads header bytes in place (a line at a
/// time when it is whole, else byte by byte) and skips bodies by counting.
public struct HTTPParseState: Sendable, Equatable {
    enum Stage: UInt8, Sendable {
        case start, startLine, headerLineStart, headerName, headerValue, headersEndLF
        case body, chunkSize, chunkExtension, chunkSizeLF, chunkData, chunkDataCR, chunkDataLF
        case trailerLineStart, trailerLine, trailersEndLF
    }

    var stage = Stage.start
    /// Bytes of the start line and headers so far (against the limit).
    var headerBytes = 0
    /// Start line: position within it, the field (0: first, 1: second, 2: third), and that field's length.
    var field = 0
    var fieldLength = 0
    /// The status code (responses).
    var status = 0
    /// Which interesting header this is: a bitmask of names still matching, then the one that matched.
    var candidates: UInt8 = 0
    var nameLength = 0
    var header: UInt8 = 0
    /// Within a value: how much of the token looked for ("chunked", "close") matched, and whether it did.
    var tokenMatched = 0
    var sawDigit = false
    /// What the headers said.
    var contentLength: Int64 = -1
    var chunked = false
    var close = false
    /// HTTP/1.0 (closes unless `Connection: keep-alive`), and whether that was said.
    var http10 = false
    var keepAlive = false
    var keepAliveMatched = 0
    /// Body or chunk bytes still to come.
    var remaining: Int64 = 0
    var chunkDigits = 0
    /// Whether the last line ended with CR (a bare LF is accepted too).
    var sawCR = false

    public init() {}

    /// Whether a message has begun and not ended.
    public var inMessage: Bool { stage != .start }
}

/// An incremental HTTP/1.1 parser of requests (server side) or responses (client side): the start
/// line, the headers that decide framing and keep-alive (`Content-Length`, `Transfer-Encoding: chunked`,
/// `Connection: close`), then the body by length or chunks. Any split of the bytes, no buffering, no
/// allocation; the header section is bounded by `maxHeaderSize`, bodies by `maxBodySize`.
public struct HTTPParser: Sendable {
    /// One step's result.
    public enum Step: Equatable, Sendable {
        /// A message ended (its status for a response, 0 for a request; whether it asked to close);
        /// the next begins at `next`.
        case message(next: Int, status: Int, close: Bool)
        /// Every byte was taken and the message goes on.
        case needMore
        /// Malformed.
        case malformed
        /// The header section passed `maxHeaderSize`.
        case headersTooLarge
        /// A body larger than `maxBodySize`, or a response without a length (read to close is not kept
        /// alive, so it cannot be matched).
        case unframed
    }

    public enum Kind: Sendable { case request, response }

    let kind: Kind
    public let maxHeaderSize: Int
    public let maxBodySize: Int64
    /// Responses to HEAD carry no body whatever their Content-Length says.
    let headRequests: Bool

    // The tables, copied into the parser once: a static would cost a `swift_once` check per byte.
    let contentLengthTable = HTTPParser.contentLength
    let transferEncodingTable = HTTPParser.transferEncoding
    let connectionTable = HTTPParser.connection
    let chunkedTokenTable = HTTPParser.chunkedToken
    let closeTokenTable = HTTPParser.closeToken
    let httpPrefixTable = HTTPParser.httpPrefix
    let keepAliveWordTable = HTTPParser.keepAliveWord

    public init(_ kind: Kind, maxHeaderSize: Int = 64 * 1024, maxBodySize: Int64 = 1 << 40, headRequests: Bool = false) {
        self.kind = kind
        self.maxHeaderSize = maxHeaderSize
        self.maxBodySize = maxBodySize
        self.headRequests = headRequests
    }

    static let contentLength = Array("content-length".utf8)
    static let transferEncoding = Array("transfer-encoding".utf8)
    static let connection = Array("connection".utf8)
    static let chunkedToken = Array("chunked".utf8)
    static let closeToken = Array("close".utf8)
    static let httpPrefix = Array("HTTP/1.".utf8)

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b | 0x20 : b }

    /// tchar (RFC 9110): letters, digits and the visible symbols that are not separators
    /// (! # $ % & ' * + - . ^ _ | ~ and the backtick); looked up in two 64-bit masks (`tokenMaskLow`).
    @inline(__always)
    static func isTokenByte(_ b: UInt8) -> Bool {
        let mask = b < 64 ? tokenMaskLow : tokenMaskHigh
        return b < 128 && (mask >> UInt64(b & 63)) & 1 != 0
    }

    /// Consumes bytes from `start` until a message ends, the bytes run out, or they break HTTP.
    ///
    /// A line that begins here whole is taken at once (`wholeStartLine`, `wholeHeaderLine`); the rest, and
    /// whatever those defer (cut lines, lines near the limit, anything unusual), byte by byte below.
    public func next(_ bytes: UnsafeRawBufferPointer, at start: Int, _ s: inout HTTPParseState) -> Step {
        var i = start
        let count = bytes.count
        while i < count {
            switch s.stage {
            case .start:
                if wholeStartLine(bytes, &i, &s) { continue }
            case .headerLineStart:
                switch wholeHeaderLine(bytes, &i, &s) {
                case .taken: continue
                case .step(let step): return step
                case .deferred: break
                }
            case .body:
                let take = Int(min(s.remaining, Int64(count - i)))
                s.remaining -= Int64(take)
                i += take
                if s.remaining == 0 { return finish(&s, next: i) }
                continue
            case .chunkData:
                let take = Int(min(s.remaining, Int64(count - i)))
                s.remaining -= Int64(take)
                i += take
                if s.remaining == 0 { s.stage = .chunkDataCR }
                continue
            default:
                break
            }
            let b = bytes[i]
            i += 1
            if s.stage.rawValue <= HTTPParseState.Stage.headersEndLF.rawValue {
                s.headerBytes += 1
                if s.headerBytes > maxHeaderSize { return .headersTooLarge }
            }
            switch s.stage {
            case .start:
                s = HTTPParseState()
                s.stage = .startLine
                s.headerBytes = 1
                if let bad = startLine(b, &s) { return bad }
            case .startLine:
                if let bad = startLine(b, &s) { return bad }
            case .headerLineStart:
                if b == 13 { s.stage = .headersEndLF; continue }
                if b == 10 {
                    if let step = headersEnded(&s, next: i) { return step }
                    continue
                }
                guard Self.isTokenByte(b) else { return .malformed }
                s.stage = .headerName
                s.candidates = 0b111
                s.nameLength = 0
                s.header = 0
                nameByte(b, &s)
            case .headerName:
                if b == UInt8(ascii: ":") {
                    s.header = 0
                    if s.candidates & 1 != 0 && s.nameLength == contentLengthTable.count { s.header = 1 }
                    if s.candidates & 2 != 0 && s.nameLength == transferEncodingTable.count { s.header = 2 }
                    if s.candidates & 4 != 0 && s.nameLength == connectionTable.count { s.header = 3 }
                    s.stage = .headerValue
                    s.tokenMatched = 0
                    s.keepAliveMatched = 0
                    s.sawDigit = false
                    s.sawCR = false
                    if s.header == 1 {
                        guard s.contentLength < 0 else { return .malformed }  // two lengths: refuse (smuggling)
                        s.contentLength = 0
                    }
                    continue
                }
                guard Self.isTokenByte(b) else { return .malformed }
                nameByte(b, &s)
            case .headerValue:
                if s.header == 0 && b != 10 {
                    // A value nobody reads: jump to its line's end (the header limit still counts it).
                    let rest = count - i
                    if let hit = memchr(bytes.baseAddress! + i, 10, rest) {
                        let skipped = bytes.baseAddress!.distance(to: UnsafeRawPointer(hit)) - i
                        s.headerBytes += skipped + 1
                        if s.headerBytes > maxHeaderSize { return .headersTooLarge }
                        i += skipped + 1
                        s.stage = .headerLineStart
                    } else {
                        s.headerBytes += rest
                        if s.headerBytes > maxHeaderSize { return .headersTooLarge }
                        i = count
                    }
                    continue
                }
                if b == 10 {
                    if s.header == 1 && !s.sawDigit { return .malformed }
                    s.stage = .headerLineStart
                    continue
                }
                if s.sawCR { return .malformed }
                if b == 13 { s.sawCR = true; continue }
                if b < 32 && b != 9 { return .malformed }
                switch s.header {
                case 1:
                    if b >= 48 && b <= 57 {
                        s.sawDigit = true
                        s.contentLength = s.contentLength * 10 + Int64(b - 48)
                        if s.contentLength > maxBodySize { return .unframed }
                    } else if b != 32 && b != 9 {
                        return .malformed
                    }
                case 2: token(b, chunkedTokenTable, &s) { $0.chunked = true }
                case 3:
                    token(b, closeTokenTable, &s) { $0.close = true }
                    keepAliveToken(b, &s)
                default: break
                }
            case .headersEndLF:
                guard b == 10 else { return .malformed }
                if let step = headersEnded(&s, next: i) { return step }
            case .chunkSize:
                if let digit = Self.hex(b) {
                    s.chunkDigits += 1
                    guard s.chunkDigits <= 15 else { return .unframed }
                    s.remaining = s.remaining << 4 | Int64(digit)
                } else if s.chunkDigits > 0 && (b == UInt8(ascii: ";") || b == 32 || b == 9) {
                    s.stage = .chunkExtension
                } else if s.chunkDigits > 0 && b == 13 {
                    s.stage = .chunkSizeLF
                } else if s.chunkDigits > 0 && b == 10 {
                    if let step = chunkStarts(&s, next: i) { return step }
                } else {
                    return .malformed
                }
            case .chunkExtension:
                s.headerBytes += 1
                if s.headerBytes > maxHeaderSize { return .headersTooLarge }
                if b == 13 { s.stage = .chunkSizeLF } else if b == 10 { if let step = chunkStarts(&s, next: i) { return step } }
            case .chunkSizeLF:
                guard b == 10 else { return .malformed }
                if let step = chunkStarts(&s, next: i) { return step }
            case .chunkDataCR:
                if b == 13 { s.stage = .chunkDataLF } else if b == 10 { s.stage = .chunkSize; s.chunkDigits = 0 } else { return .malformed }
            case .chunkDataLF:
                guard b == 10 else { return .malformed }
                s.stage = .chunkSize
                s.chunkDigits = 0
            case .trailerLineStart:
                s.headerBytes += 1
                if s.headerBytes > maxHeaderSize { return .headersTooLarge }
                if b == 13 { s.stage = .trailersEndLF } else if b == 10 { return finish(&s, next: i) } else { s.stage = .trailerLine }
            case .trailerLine:
                s.headerBytes += 1
                if s.headerBytes > maxHeaderSize { return .headersTooLarge }
                if b == 10 { s.stage = .trailerLineStart }
            case .trailersEndLF:
                guard b == 10 else { return .malformed }
                return finish(&s, next: i)
            case .body, .chunkData:
                break
            }
        }
        if s.stage == .body && s.remaining == 0 { return finish(&s, next: i) }
        return .needMore
    }

    /// The start line, byte by byte: `METHOD SP TARGET SP HTTP/1.x` or `HTTP/1.x SP CODE SP REASON`.
    @inline(__always)
    func startLine(_ b: UInt8, _ s: inout HTTPParseState) -> Step? {
        if b == 10 {
            // The line ends: requests need all three fields, responses a version and a code.
            switch kind {
            case .request: guard s.field == 2 && s.fieldLength == 8 else { return .malformed }
            case .response: guard s.field >= 1 && (s.field == 2 || s.fieldLength == 3) && s.status >= 100 else { return .malformed }
            }
            s.stage = .headerLineStart
            return nil
        }
        if s.sawCR { return .malformed }
        if b == 13 { s.sawCR = true; return nil }
        if b == 32 && !(kind == .response && s.field == 2) {
            guard s.fieldLength > 0 else { return .malformed }
            if kind == .response && s.field == 1 && s.fieldLength != 3 { return .malformed }
            if kind == .response && s.field == 0 && s.fieldLength != 8 { return .malformed }
            if kind == .request && s.field == 2 { return .malformed }
            s.field += 1
            s.fieldLength = 0
            return nil
        }
        let versionField = kind == .request ? 2 : 0
        if s.field == versionField {
            let at = s.fieldLength
            if at < 7 {
                guard b == httpPrefixTable[at] else { return .malformed }
            } else if at == 7 {
                guard b == UInt8(ascii: "0") || b == UInt8(ascii: "1") else { return .malformed }
                s.http10 = b == UInt8(ascii: "0")
            } else {
                return .malformed
            }
        } else if kind == .response && s.field == 1 {
            guard b >= 48 && b <= 57, s.fieldLength < 3 else { return .malformed }
            s.status = s.status * 10 + Int(b - 48)
        } else if kind == .request && s.field == 0 {
            guard Self.isTokenByte(b) else { return .malformed }
        } else if b < 32 || b == 127 {
            if !(kind == .response && b == 9) { return .malformed }
        }
        s.fieldLength += 1
        return nil
    }

    @inline(__always)
    func nameByte(_ b: UInt8, _ s: inout HTTPParseState) {
        let l = Self.lower(b)
        let n = s.nameLength
        if s.candidates & 1 != 0 && (n >= contentLengthTable.count || contentLengthTable[n] != l) { s.candidates &= ~1 }
        if s.candidates & 2 != 0 && (n >= transferEncodingTable.count || transferEncodingTable[n] != l) { s.candidates &= ~2 }
        if s.candidates & 4 != 0 && (n >= connectionTable.count || connectionTable[n] != l) { s.candidates &= ~4 }
        s.nameLength += 1
    }

    /// Looks for `word` (lowercase, no repeated first letter) as a token of a header value.
    @inline(__always)
    func token(_ b: UInt8, _ word: [UInt8], _ s: inout HTTPParseState, found: (inout HTTPParseState) -> Void) {
        let l = Self.lower(b)
        if s.tokenMatched < word.count && word[s.tokenMatched] == l {
            s.tokenMatched += 1
            if s.tokenMatched == word.count { found(&s) }
        } else {
            s.tokenMatched = word[0] == l ? 1 : 0
        }
    }

    /// `keep-alive` in a Connection value (its letters do not repeat its first).
    @inline(__always)
    func keepAliveToken(_ b: UInt8, _ s: inout HTTPParseState) {
        let word = keepAliveWordTable
        let l = Self.lower(b)
        if s.keepAliveMatched < word.count && word[s.keepAliveMatched] == l {
            s.keepAliveMatched += 1
            if s.keepAliveMatched == word.count { s.keepAlive = true }
        } else {
            s.keepAliveMatched = word[0] == l ? 1 : 0
        }
    }

    static let keepAliveWord = Array("keep-alive".utf8)

    @inline(__always)
    static func hex(_ b: UInt8) -> Int? {
        switch b {
        case 48...57: Int(b - 48)
        case 97...102: Int(b - 87)
        case 65...70: Int(b - 55)
        default: nil
        }
    }

    /// The blank line after the headers: decides how the body is framed.
    @inline(__always)
    func headersEnded(_ s: inout HTTPParseState, next: Int) -> Step? {
        if kind == .response && s.status < 200 {
            // 1xx: an interim answer; the real one follows.
            s.stage = .start
            return nil
        }
        if s.chunked {
            if s.contentLength >= 0 && kind == .request { return .malformed }  // both: refuse (smuggling)
            if kind == .response && (headRequests || s.status == 204 || s.status == 304) { return finish(&s, next: next) }
            s.stage = .chunkSize
            s.chunkDigits = 0
            s.remaining = 0
            return nil
        }
        if kind == .response && (headRequests || s.status == 204 || s.status == 304) { return finish(&s, next: next) }
        if s.contentLength > 0 {
            s.stage = .body
            s.remaining = s.contentLength
            return nil
        }
        if s.contentLength == 0 || kind == .request { return finish(&s, next: next) }
        // A response without a length runs to the close: nothing to keep alive or pipeline.
        return .unframed
    }

    @inline(__always)
    func chunkStarts(_ s: inout HTTPParseState, next: Int) -> Step? {
        s.chunkDigits = 0
        if s.remaining == 0 {
            s.stage = .trailerLineStart
            return nil
        }
        s.stage = .chunkData
        return nil
    }

    @inline(__always)
    func finish(_ s: inout HTTPParseState, next: Int) -> Step {
        // HTTP/1.0 closes after the message unless it said keep-alive.
        let step = Step.message(next: next, status: s.status, close: s.close || (s.http10 && !s.keepAlive))
        s.stage = .start
        return step
    }
}
