import Glibc

/// Where one connection is inside the response being received: a few integers, kept per client.
public struct RawFrameState: Sendable, Equatable {
    /// Bytes of the current response seen so far.
    var position = 0
    /// Delimiter bytes matched at the end of what was seen.
    var matched = 0
    /// The length field, as far as it has come.
    var length: UInt64 = 0
    /// The response's whole size once known (length prefix), else -1.
    var total = -1
    /// The connection's global client number (for `{client}`), kept across responses.
    public var client = 0

    public init(client: Int = 0) { self.client = client }

    /// Whether a response has begun and not ended.
    public var inResponse: Bool { position > 0 }
}

/// Finds where responses end, for one `RawFraming`: incremental, any split of bytes, nothing buffered
/// (it only counts), nothing allocated.
public struct RawFramer: Sendable {
    /// One step's result.
    public enum Step: Equatable {
        /// A response ended; the next begins at this index.
        case response(next: Int)
        /// Every byte was taken and the response goes on.
        case needMore
        /// The bytes break the framing (too large, a length that cannot be).
        case violation
    }

    let framing: RawFraming
    let maxSize: Int
    let delimiter: [UInt8]
    /// KMP failure function of the delimiter.
    let failure: [Int]
    let prefix: RawLengthPrefix

    public init(_ framing: RawFraming, maxSize: Int) {
        self.framing = framing
        self.maxSize = maxSize
        if case .delimiter(let d) = framing { delimiter = d } else { delimiter = [] }
        if case .lengthPrefix(let p) = framing { prefix = p } else { prefix = RawLengthPrefix(width: 1) }
        var f = [Int](repeating: 0, count: max(delimiter.count, 1))
        var k = 0
        if delimiter.count > 1 {
            for i in 1..<delimiter.count {
                while k > 0 && delimiter[i] != delimiter[k] { k = f[k - 1] }
                if delimiter[i] == delimiter[k] { k += 1 }
                f[i] = k
            }
        }
        failure = f
    }

    /// Consumes bytes from `start` until a response ends or the bytes run out.
    @inline(__always)
    public func next(_ bytes: UnsafeRawBufferPointer, at start: Int, _ s: inout RawFrameState) -> Step {
        switch framing {
        case .size(let size): return fixed(size, bytes, start, &s)
        case .delimiter: return delimited(bytes, start, &s)
        case .lengthPrefix: return prefixed(bytes, start, &s)
        }
    }

    @inline(__always)
    func fixed(_ size: Int, _ bytes: UnsafeRawBufferPointer, _ start: Int, _ s: inout RawFrameState) -> Step {
        let need = size - s.position
        let available = bytes.count - start
        if available >= need {
            s = RawFrameState(client: s.client)
            return .response(next: start + need)
        }
        s.position += available
        return .needMore
    }

    @inline(__always)
    func delimited(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ s: inout RawFrameState) -> Step {
        var i = start
        let count = bytes.count
        let first = delimiter[0]
        while i < count {
            if s.matched == 0 {
                // Skip to the delimiter's first byte.
                let rest = count - i
                guard let hit = memchr(bytes.baseAddress! + i, Int32(first), rest) else {
                    s.position += rest
                    return s.position > maxSize ? .violation : .needMore
                }
                let skipped = bytes.baseAddress!.distance(to: UnsafeRawPointer(hit))
                s.position += skipped - i
                i = skipped
            }
            let b = bytes[i]
            i += 1
            s.position += 1
            while s.matched > 0 && delimiter[s.matched] != b { s.matched = failure[s.matched - 1] }
            if delimiter[s.matched] == b { s.matched += 1 }
            if s.matched == delimiter.count {
                if s.position > maxSize { return .violation }
                s = RawFrameState(client: s.client)
                return .response(next: i)
            }
            if s.position >= maxSize { return .violation }
        }
        return .needMore
    }

    @inline(__always)
    func prefixed(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ s: inout RawFrameState) -> Step {
        var i = start
        let count = bytes.count
        let p = prefix
        let header = p.headerSize
        while s.total < 0 {
            guard i < count else { return .needMore }
            let at = s.position
            if at >= p.offset {
                let b = UInt64(bytes[i])
                if p.bigEndian { s.length = s.length << 8 | b } else { s.length |= b << UInt64(8 * (at - p.offset)) }
            }
            i += 1
            s.position += 1
            if s.position == header {
                let total: UInt64
                if p.includesHeader {
                    guard s.length >= UInt64(header) else { return .violation }
                    total = s.length
                } else {
                    guard s.length <= UInt64(maxSize) else { return .violation }
                    total = s.length + UInt64(header)
                }
                guard total <= UInt64(maxSize) else { return .violation }
                s.total = Int(total)
            }
        }
        let need = s.total - s.position
        let available = count - i
        if available >= need {
            s = RawFrameState(client: s.client)
            return .response(next: i + need)
        }
        s.position += available
        return .needMore
    }
}
