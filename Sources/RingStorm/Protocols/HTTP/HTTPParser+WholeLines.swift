import Glibc

/// The common case taken a line at a time. A response like nginx's (a status line, a few headers, 160
/// bytes) nearly always arrives whole, yet the byte-at-a-time machine in `next` costs a dispatch and a
/// limit check per byte, and matched every header name against three names byte by byte. Here a line
/// that is whole in the bytes at hand, within the header limit, and of the plain shape is taken in one
/// go: names by a token-mask scan, then a length switch and two or three 8-byte compares; values nobody
/// reads by `memchr` for the line's end; `Connection: keep-alive` by two compares.
///
/// Equal results by construction: these functions never decide an error. A line cut by the end of the
/// bytes, one that would pass `maxHeaderSize`, and one with anything unusual (a malformed byte, a second
/// `Content-Length`, a length past `maxBodySize`) is `deferred`, the state left untouched, and the byte
/// machine takes it from the same offset and decides as it always did. A line taken here leaves the
/// state as the byte machine would (the fields its next line reads; scratch fields of the last line may
/// differ, and nothing reads them). So any split of the bytes still gives the same messages and
/// verdicts, and scans stop at the header limit.
extension HTTPParser {
    /// What a whole-line step did.
    enum LineStep {
        /// Not taken: the byte machine takes this line from the same offset.
        case deferred
        /// Taken; the index is past its LF.
        case taken
        /// The blank line ended the headers with this step (from `headersEnded`, as the byte path).
        case step(Step)
    }

    /// The bytes `isTokenByte` accepts, as bit masks over 0–63 and 64–127 (none from 128 up).
    /// Computed properties: a stored static would cost a `swift_once` check on each use.
    @inline(__always) static var tokenMaskLow: UInt64 { 0x03FF_6CFA_0000_0000 }
    @inline(__always) static var tokenMaskHigh: UInt64 { 0x57FF_FFFF_C7FF_FFFE }

    /// "HTTP/1." as a little-endian word, its eighth byte (the minor version) masked off.
    @inline(__always) static var httpPrefixWord: UInt64 { 0x002E_312F_5054_5448 }
    @inline(__always) static var httpPrefixMask: UInt64 { 0x00FF_FFFF_FFFF_FFFF }

    /// The names that matter, lowercase, as little-endian words at the offsets `headerKind` loads.
    /// Folding a token byte with 0x20 only ever turns an uppercase letter into its lowercase one (the
    /// other byte that folds onto `-`, CR, is not a token), so `word | 0x2020…` compares case-insensitively.
    @inline(__always) static var caseFold: UInt64 { 0x2020_2020_2020_2020 }

    @inline(__always)
    static func byte(_ p: UnsafeRawPointer, _ at: Int) -> UInt8 { p.load(fromByteOffset: at, as: UInt8.self) }

    @inline(__always)
    static func word(_ p: UnsafeRawPointer, _ at: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    /// Whether `p[k...]` is ` keep-alive` CRLF (the space optional), any case, within `end`. Only the
    /// letters are folded (`| 0x20` maps nothing else onto a letter); the `-` is compared as it is.
    @inline(__always)
    static func isKeepAliveLine(_ p: UnsafeRawPointer, _ k: Int, _ end: Int) -> Bool {
        guard end - k >= 13 else { return false }
        let v = byte(p, k) == 32 ? k + 1 : k
        return word(p, v) | 0x2020_2000_2020_2020 == 0x696C_612D_7065_656B  // "keep-ali"
            && word(p, v + 2) | 0x2020_2020_2000_2020 == 0x6576_696C_612D_7065  // "ep-alive"
            && byte(p, v + 10) == 13 && byte(p, v + 11) == 10
    }

    /// Which header a name of `length` token bytes at `p` is: 1 Content-Length, 2 Transfer-Encoding,
    /// 3 Connection, 0 any other (as `nameByte`'s candidates decide at the colon).
    @inline(__always)
    static func headerKind(_ p: UnsafeRawPointer, length: Int) -> UInt8 {
        switch length {
        case 14:  // "content-", "t-length"
            return word(p, 0) | caseFold == 0x2D74_6E65_746E_6F63 && word(p, 6) | caseFold == 0x6874_676E_656C_2D74 ? 1 : 0
        case 17:  // "transfer", "-encodin", "encoding"
            return word(p, 0) | caseFold == 0x7265_6673_6E61_7274 && word(p, 8) | caseFold == 0x6E69_646F_636E_652D
                && word(p, 9) | caseFold == 0x676E_6964_6F63_6E65 ? 2 : 0
        case 10:  // "connecti", "nnection"
            return word(p, 0) | caseFold == 0x6974_6365_6E6E_6F63 && word(p, 2) | caseFold == 0x6E6F_6974_6365_6E6E ? 3 : 0
        default:
            return 0
        }
    }

    /// One step of looking for `word` (lowercase, no repeated first letter) in a value: `token`'s
    /// matcher on a local count. True when the word just completed.
    @inline(__always)
    static func match(_ l: UInt8, _ word: [UInt8], _ matched: inout Int) -> Bool {
        if matched < word.count && word[matched] == l {
            matched += 1
            return matched == word.count
        }
        matched = word[0] == l ? 1 : 0
        return false
    }

    /// A start line whole in `bytes` from `i`: `HTTP/1.x DDD reason` (responses) or
    /// `METHOD SP target SP HTTP/1.x` (requests), ending in CRLF or LF. Begins the message as `.start`
    /// does in the byte machine; false (state untouched) defers to it.
    @inline(__always)
    func wholeStartLine(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, _ s: inout HTTPParseState) -> Bool {
        // The byte machine counts the first byte against what the last message left before it resets.
        guard s.headerBytes < maxHeaderSize, let p = bytes.baseAddress else { return false }
        let start = i
        let end = start + min(bytes.count - start, maxHeaderSize)
        var k = start
        var status = 0
        let version: UInt64
        switch kind {
        case .response:
            guard end - k >= 13 else { return false }
            version = Self.word(p, k)
            let d0 = Self.byte(p, k + 9) &- 48, d1 = Self.byte(p, k + 10) &- 48, d2 = Self.byte(p, k + 11) &- 48
            guard Self.byte(p, k + 8) == 32, d0 > 0 && d0 < 10, d1 < 10, d2 < 10 else { return false }
            status = Int(d0) * 100 + Int(d1) * 10 + Int(d2)
            k += 12
            let after = Self.byte(p, k)
            if after == 32 {
                k += 1
            } else if after != 13 && after != 10 {
                return false
            }
            // The reason phrase: visible bytes, spaces and tabs; a CR only before the LF.
            while true {
                guard k < end else { return false }
                let b = Self.byte(p, k)
                k += 1
                if b == 10 { break }
                if b == 13 {
                    guard k < end, Self.byte(p, k) == 10 else { return false }
                    k += 1
                    break
                }
                if (b < 32 && b != 9) || b == 127 { return false }
            }
        case .request:
            while k < end && Self.isTokenByte(Self.byte(p, k)) { k += 1 }
            guard k > start, k < end, Self.byte(p, k) == 32 else { return false }
            k += 1
            let target = k
            while k < end {
                let b = Self.byte(p, k)
                if b == 32 { break }
                guard b > 32 && b != 127 else { return false }
                k += 1
            }
            guard k > target, end - k >= 10 else { return false }  // SP, "HTTP/1.x", LF at least
            version = Self.word(p, k + 1)
            k += 9
            let b = Self.byte(p, k)
            if b == 10 {
                k += 1
            } else if b == 13 && k + 1 < end && Self.byte(p, k + 1) == 10 {
                k += 2
            } else {
                return false
            }
        }
        let minor = UInt8(truncatingIfNeeded: version >> 56)
        guard version & Self.httpPrefixMask == Self.httpPrefixWord, minor == 48 || minor == 49 else { return false }
        s = HTTPParseState()
        s.stage = .headerLineStart
        s.headerBytes = k - start
        s.status = status
        s.http10 = minor == 48
        i = k
        return true
    }

    /// A header line (or the blank line) whole in `bytes` from `i`, within the header limit.
    @inline(__always)
    func wholeHeaderLine(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, _ s: inout HTTPParseState) -> LineStep {
        guard let p = bytes.baseAddress else { return .deferred }
        let start = i
        // Scans stop where the header limit would: a line passing it is the byte machine's to refuse.
        let end = start + min(bytes.count - start, maxHeaderSize - s.headerBytes)
        guard end > start else { return .deferred }
        let first = Self.byte(p, start)
        if first == 13 || first == 10 {
            let lineEnd = first == 10 ? start + 1 : start + 2
            guard lineEnd <= end, Self.byte(p, lineEnd - 1) == 10 else { return .deferred }
            s.headerBytes += lineEnd - start
            i = lineEnd
            if let step = headersEnded(&s, next: lineEnd) { return .step(step) }
            return .taken
        }
        var k = start
        while k < end && Self.isTokenByte(Self.byte(p, k)) { k += 1 }
        guard k > start, k < end, Self.byte(p, k) == UInt8(ascii: ":") else { return .deferred }
        let header = Self.headerKind(p + start, length: k - start)
        k += 1
        switch header {
        case 0:
            // A value nobody reads: anything up to the LF, as the byte machine's skip.
            guard k < end, let hit = memchr(p + k, 10, end - k) else { return .deferred }
            k = p.distance(to: UnsafeRawPointer(hit)) + 1
        case 1:
            // Digits, with spaces and tabs skipped wherever they are (as the byte machine does).
            guard s.contentLength < 0 else { return .deferred }  // a second length: the byte machine refuses
            var length: Int64 = 0
            var sawDigit = false
            while true {
                guard k < end else { return .deferred }
                let b = Self.byte(p, k)
                k += 1
                if b &- 48 < 10 {
                    length = length * 10 + Int64(b &- 48)
                    guard length <= maxBodySize else { return .deferred }
                    sawDigit = true
                } else if b == 10 {
                    break
                } else if b == 13 {
                    guard k < end, Self.byte(p, k) == 10 else { return .deferred }
                    k += 1
                    break
                } else if b != 32 && b != 9 {
                    return .deferred
                }
            }
            guard sawDigit else { return .deferred }
            s.contentLength = length
        case 3 where Self.isKeepAliveLine(p, k, end):
            // nginx's `Connection: keep-alive`, the value alone on its line: what the loop below finds.
            s.keepAlive = true
            k += Self.byte(p, k) == 32 ? 13 : 12
        default:
            // Transfer-Encoding (`chunked` anywhere) or Connection (`close`, `keep-alive` anywhere).
            let word = header == 2 ? chunkedTokenTable : closeTokenTable
            var matched = 0
            var keepAliveMatched = 0
            var found = false
            var keepAlive = false
            while true {
                guard k < end else { return .deferred }
                let b = Self.byte(p, k)
                k += 1
                if b == 10 { break }
                if b == 13 {
                    guard k < end, Self.byte(p, k) == 10 else { return .deferred }
                    k += 1
                    break
                }
                if b < 32 && b != 9 { return .deferred }
                let l = Self.lower(b)
                if Self.match(l, word, &matched) { found = true }
                if header == 3 && Self.match(l, keepAliveWordTable, &keepAliveMatched) { keepAlive = true }
            }
            if found {
                if header == 2 { s.chunked = true } else { s.close = true }
            }
            if keepAlive { s.keepAlive = true }
        }
        s.headerBytes += k - start
        i = k
        return .taken
    }
}
