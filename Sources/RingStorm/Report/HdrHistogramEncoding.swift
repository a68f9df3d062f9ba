import CZlib
import Foundation
import Histogram

/// HdrHistogram's compressed V2 encoding ("HISTFAAA..." in base64), the form every HdrHistogram library
/// (Java, C, Go, Python, Rust) reads and writes: so a report's histograms are lossless and can be merged
/// or plotted by other tools. hdrhistogram-swift 0.2.0 has no encoder, so this is one.
///
/// Layout (all big-endian), as Java's `AbstractHistogram.encodeIntoCompressedByteBuffer`:
/// - compressed: cookie `0x1c849314` (V2 compressed base `0x1c849304` | `0x10`), int32 length of the
///   zlib stream, the zlib (deflate) stream of the uncompressed encoding;
/// - uncompressed: cookie `0x1c849313` (V2 base `0x1c849303` | `0x10`), int32 payload length, int32
///   normalizing index offset (0), int32 significant digits, int64 lowest discernible value, int64 highest
///   trackable value, float64 integer-to-double ratio (1.0); then the counts array up to the maximum's
///   index as ZigZag LEB128 (at most 9 bytes), a run of N zero counts written once as -N.
///
/// The encoding has no exact maximum (only its bucket): a reader that knows it (the report's `max`)
/// passes it to `decode` so percentiles come back exactly as they were.
package enum HdrHistogramEncoding {
    static let v2Cookie: UInt32 = 0x1c84_9303 | 0x10
    static let v2CompressedCookie: UInt32 = 0x1c84_9304 | 0x10

    /// Why a text is not a histogram this program reads.
    package struct Invalid: Error, CustomStringConvertible, Sendable, Equatable {
        package var reason: String
        package var description: String { "not an HdrHistogram V2 encoding: \(reason)" }
    }

    // The counts array of a histogram with lowest discernible value 1 and 3 significant digits (the only
    // layout a `LatencyRecorder` has): 2048 sub-buckets, half of them per bucket after the first. The one
    // place this layout is computed: the encoding walks it, and `LatencyTally` counts in it.
    static let subBucketHalfCountMagnitude = 10
    static let subBucketHalfCount = 1 << subBucketHalfCountMagnitude
    static let subBucketMask: UInt64 = UInt64(2 * subBucketHalfCount - 1)

    /// HdrHistogram's counts index of `value` (its `countsIndexForValue`).
    @inline(__always)
    static func countsIndex(of value: UInt64) -> Int {
        let bucketIndex = (64 - subBucketHalfCountMagnitude - 1) - (value | subBucketMask).leadingZeroBitCount
        let subBucketIndex = Int(value >> UInt64(bucketIndex))
        return ((bucketIndex + 1) << subBucketHalfCountMagnitude) + (subBucketIndex - subBucketHalfCount)
    }

    /// The lowest value of the bucket at counts index `index`: it records into the same bucket.
    static func value(atIndex index: Int) -> UInt64 {
        var bucketIndex = (index >> subBucketHalfCountMagnitude) - 1
        var subBucketIndex = (index & (subBucketHalfCount - 1)) + subBucketHalfCount
        if bucketIndex < 0 {
            subBucketIndex -= subBucketHalfCount
            bucketIndex = 0
        }
        return UInt64(subBucketIndex) << UInt64(bucketIndex)
    }

    // MARK: Encoding

    /// The recorder's histogram, compressed V2, in base64.
    package static func encode(_ recorder: LatencyRecorder) -> String {
        let histogram = recorder.histogram
        var counts: [(index: Int, count: UInt64)] = []
        for item in histogram.recordedValues() {
            counts.append((countsIndex(of: histogram.lowestEquivalentForValue(item.value)), UInt64(item.count)))
        }
        var payload: [UInt8] = []
        var next = 0
        for (index, count) in counts {
            if index > next { putZigZag(-Int64(index - next), into: &payload) }
            putZigZag(Int64(clamping: count), into: &payload)
            next = index + 1
        }
        var plain: [UInt8] = []
        plain.reserveCapacity(40 + payload.count)
        put32(v2Cookie, into: &plain)
        put32(UInt32(payload.count), into: &plain)
        put32(0, into: &plain)  // normalizing index offset
        put32(3, into: &plain)  // significant digits
        put64(1, into: &plain)  // lowest discernible value
        put64(histogram.highestTrackableValue, into: &plain)
        put64((1.0 as Double).bitPattern, into: &plain)
        plain += payload
        let compressed = deflate(plain)
        var out: [UInt8] = []
        put32(v2CompressedCookie, into: &out)
        put32(UInt32(compressed.count), into: &out)
        out += compressed
        return Data(out).base64EncodedString()
    }

    static func putZigZag(_ value: Int64, into bytes: inout [UInt8]) {
        var v = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        for _ in 0..<8 {
            if v < 0x80 {
                bytes.append(UInt8(v))
                return
            }
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: v))  // the ninth byte carries 8 bits
    }

    static func put32(_ v: UInt32, into bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    static func put64(_ v: UInt64, into bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    static func deflate(_ input: [UInt8]) -> [UInt8] {
        var length = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        let status = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { destination in
                compress2(destination.baseAddress, &length, source.baseAddress, uLong(input.count), Z_DEFAULT_COMPRESSION)
            }
        }
        precondition(status == Z_OK, "compress2 failed with \(status) on a buffer of compressBound's size")
        return Array(output.prefix(Int(length)))
    }

    // MARK: Decoding

    /// A recorder from a compressed (or plain) V2 encoding in base64. `exactMaximum`, when known and in the
    /// maximum's bucket, restores the exact largest value (the encoding keeps only its bucket).
    /// `compact`: size the histogram to the values present rather than to the encoded range (an interval's
    /// histogram, decoded only to be added and encoded again).
    package static func decode(_ text: String, exactMaximum: UInt64? = nil, compact: Bool = false) throws(Invalid) -> LatencyRecorder {
        guard let data = Data(base64Encoded: text) else { throw Invalid(reason: "not base64") }
        var bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw Invalid(reason: "\(bytes.count) bytes, shorter than a header") }
        let cookie = get32(bytes, 0)
        if cookie == v2CompressedCookie {
            let length = Int(get32(bytes, 4))
            guard length <= bytes.count - 8 else { throw Invalid(reason: "compressed length \(length) beyond the \(bytes.count - 8) bytes given") }
            bytes = try inflate(Array(bytes[8..<(8 + length)]))
        }
        guard bytes.count >= 40 else { throw Invalid(reason: "\(bytes.count) bytes, shorter than a V2 header") }
        let plainCookie = get32(bytes, 0)
        guard plainCookie == v2Cookie else {
            throw Invalid(reason: "cookie 0x\(String(plainCookie, radix: 16)), expected 0x\(String(v2Cookie, radix: 16)) (V2)")
        }
        let payloadLength = Int(get32(bytes, 4))
        let offset = get32(bytes, 8)
        let digits = get32(bytes, 12)
        let lowest = get64(bytes, 16)
        let highest = get64(bytes, 24)
        guard payloadLength <= bytes.count - 40 else { throw Invalid(reason: "payload length \(payloadLength) beyond the \(bytes.count - 40) bytes given") }
        guard offset == 0 else { throw Invalid(reason: "normalizing index offset \(offset), expected 0") }
        guard digits == 3, lowest == 1 else {
            throw Invalid(reason: "\(digits) significant digits from \(lowest): RingStorm's histograms have 3 from 1 (µs)")
        }
        guard highest >= 2, highest <= UInt64.max / 4 else { throw Invalid(reason: "highest trackable value \(highest) out of range") }
        var recorder = LatencyRecorder(highestTrackable: compact ? 2 : highest)
        var position = 40
        let end = 40 + payloadLength
        var index = 0
        var maximum: UInt64 = 0
        while position < end {
            let count = try getZigZag(bytes, &position, end: end)
            if count < 0 {
                guard count > -(1 << 40) else { throw Invalid(reason: "zero run \(-count) too long") }
                index += Int(-count)
                continue
            }
            if count > 0 {
                guard index < (64 - subBucketHalfCountMagnitude) << subBucketHalfCountMagnitude else { throw Invalid(reason: "count index \(index) beyond 64-bit values") }
                let value = value(atIndex: index)
                recorder.restore(value, count: UInt64(count))
                maximum = value
            }
            index += 1
        }
        if let exactMaximum, exactMaximum >= maximum, countsIndex(of: exactMaximum) == countsIndex(of: maximum) {
            recorder.restore(exactMaximum, count: 0)
        }
        return recorder
    }

    static func get32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { ($0 << 8) | UInt32(b[at + $1]) }
    }

    static func get64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(0) { ($0 << 8) | UInt64(b[at + $1]) }
    }

    static func getZigZag(_ b: [UInt8], _ position: inout Int, end: Int) throws(Invalid) -> Int64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        for i in 0..<9 {
            guard position < end else { throw Invalid(reason: "a count cut short at byte \(position)") }
            let byte = b[position]
            position += 1
            if i == 8 {
                v |= UInt64(byte) << 56
                break
            }
            v |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
    }

    static func inflate(_ input: [UInt8]) throws(Invalid) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { throw Invalid(reason: "zlib would not start") }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = input
        var status: Int32 = Z_OK
        input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = uInt(source.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { destination in
                    stream.next_out = destination.baseAddress
                    stream.avail_out = uInt(destination.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                output += chunk.prefix(chunk.count - Int(stream.avail_out))
            } while status == Z_OK && output.count < 64 << 20
        }
        guard status == Z_STREAM_END else { throw Invalid(reason: "the zlib stream is damaged (inflate returned \(status))") }
        return output
    }
}
