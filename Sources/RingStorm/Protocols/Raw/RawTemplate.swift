/// A message with placeholders, cut once into segments (literal bytes, or a number to write in
/// decimal) so that filling it per message allocates nothing.
///
/// Placeholders: `{client}` (the global client number), `{seq}` (the request's sequence number on its
/// connection: 0, 1, ...), `{time_us}` (the request's intended send time, monotonic microseconds).
/// Any other brace is a literal byte.
public struct RawTemplate: Sendable {
    enum Segment: Sendable, Equatable {
        case literal(start: Int, end: Int)
        case client
        case sequence
        case timeMicroseconds
    }

    let bytes: [UInt8]
    let segments: [Segment]
    /// The longest the message can be once filled (each number at most 20 digits).
    public let maxSize: Int
    /// Whether it has no placeholder (it is then sent as is).
    public var isConstant: Bool { !segments.contains { if case .literal = $0 { false } else { true } } }

    static let names: [(String, Segment)] = [("{client}", .client), ("{seq}", .sequence), ("{time_us}", .timeMicroseconds)]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        var segments: [Segment] = []
        var literalStart = 0
        var i = 0
        var size = 0
        scan: while i < bytes.count {
            if bytes[i] == UInt8(ascii: "{") {
                for (name, segment) in Self.names {
                    let n = Array(name.utf8)
                    if i + n.count <= bytes.count && Array(bytes[i..<(i + n.count)]) == n {
                        if literalStart < i { segments.append(.literal(start: literalStart, end: i)); size += i - literalStart }
                        segments.append(segment)
                        size += 20
                        i += n.count
                        literalStart = i
                        continue scan
                    }
                }
            }
            i += 1
        }
        if literalStart < bytes.count { segments.append(.literal(start: literalStart, end: bytes.count)); size += bytes.count - literalStart }
        self.segments = segments
        maxSize = size
    }

    /// Writes the message for `client`'s request `sequence` intended at `timestamp` (ns) into `out`
    /// (at least `maxSize` bytes); returns its size.
    @inline(__always)
    public func render(client: Int, sequence: UInt64, timestamp: Int64, into out: UnsafeMutableRawBufferPointer) -> Int {
        var n = 0
        bytes.withUnsafeBytes { source in
            for segment in segments {
                switch segment {
                case .literal(let start, let end):
                    out.baseAddress!.advanced(by: n).copyMemory(from: source.baseAddress!.advanced(by: start), byteCount: end - start)
                    n += end - start
                case .client: n += Self.decimal(UInt64(truncatingIfNeeded: client), out, at: n)
                case .sequence: n += Self.decimal(sequence, out, at: n)
                case .timeMicroseconds: n += Self.decimal(UInt64(truncatingIfNeeded: max(timestamp, 0) / 1000), out, at: n)
                }
            }
        }
        return n
    }

    @inline(__always)
    static func decimal(_ value: UInt64, _ out: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var digits = 1
        var v = value
        while v >= 10 { v /= 10; digits += 1 }
        v = value
        var i = offset + digits - 1
        repeat {
            out[i] = UInt8(truncatingIfNeeded: v % 10) &+ 48
            v /= 10
            i -= 1
        } while v > 0
        return digits
    }
}
