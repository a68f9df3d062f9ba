/// An incremental decoder of `ringstorm` frames: one per connection, fed the chunks the network hands
/// over, in order.
///
/// A frame that lies whole inside a chunk is handed over as a view into that chunk, copying nothing. Only
/// a frame split across chunks is copied, into a buffer of this decoder that holds that one frame; a
/// length prefix split across chunks is kept in a few bytes of state. So an idle decoder owns no heap
/// memory and its state stays small for 100,000 connections (`MemoryLayout<FrameDecoder>.size` is 29
/// bytes on 64-bit Linux, a stride of 32).
///
/// A frame's length and type are checked as soon as their bytes arrive, before any body byte is
/// buffered: a length of 0 or above `maxFrameSize`, an unknown type or a body size that does not fit the
/// type throws a `ProtocolError`, and the decoder stops (every later `feed` throws the same error). It
/// never allocates more than `maxFrameSize` bytes, whatever a peer announces.
public struct FrameDecoder {
    /// Bytes of the split frame received so far (type + body, without the length prefix).
    private var buffer: [UInt8] = []
    /// The first error; once set the decoder only rethrows it.
    public private(set) var failure: ProtocolError?
    /// The largest `length` accepted.
    private let maxLength: UInt32
    /// The current frame's `length` once its prefix is complete; 0 between frames.
    private var pendingLength: UInt32 = 0
    /// The bytes of a split length prefix, accumulated big-endian.
    private var prefix: UInt32 = 0
    /// How many prefix bytes `prefix` holds (0...3).
    private var prefixCount: UInt8 = 0

    /// Split frames up to this size leave their buffer's storage allocated for the next split one;
    /// larger buffers are freed once their frame is delivered.
    static let retainedBufferCapacity = 4096

    /// - Parameter maxFrameSize: the largest `length` (type + body) accepted; at least 17, so a REQUEST
    ///   with an empty payload fits. Default 64 KiB.
    public init(maxFrameSize: Int = WireFormat.defaultMaxFrameSize) {
        precondition(maxFrameSize >= 1 + WireFormat.requestFixedBodySize && maxFrameSize <= Int(UInt32.max),
                     "maxFrameSize must be between 17 and \(UInt32.max), not \(maxFrameSize)")
        maxLength = UInt32(maxFrameSize)
    }

    /// The largest `length` (type + body) this decoder accepts.
    public var maxFrameSize: Int { Int(maxLength) }

    /// Whether bytes of an unfinished frame are held (a split prefix or a split frame).
    public var hasPartialFrame: Bool { prefixCount > 0 || pendingLength > 0 }

    /// Bytes held for an unfinished frame (heap bytes in use; the prefix bytes are inline).
    public var bufferedByteCount: Int { buffer.count }

    /// Decodes every frame that `chunk` completes, in order, handing each to `onFrame` before it
    /// returns. `onFrame` may throw a `ProtocolError` of its own (`.notRegistered`,
    /// `.unexpectedType`, ...): decoding stops there and the decoder fails with that error.
    ///
    /// - Returns: the number of frames handed to `onFrame`.
    @discardableResult
    public mutating func feed(
        _ chunk: UnsafeRawBufferPointer, _ onFrame: (Frame) throws(ProtocolError) -> Void
    ) throws(ProtocolError) -> Int {
        if let failure { throw failure }
        do throws(ProtocolError) {
            return try decode(chunk, onFrame)
        } catch {
            failure = error
            buffer = []
            pendingLength = 0
            prefixCount = 0
            throw error
        }
    }

    /// Tells the decoder the stream ended (the peer closed): throws `.truncated` if a frame was cut
    /// off. The decoder can then be reused for a new stream only after `reset()`.
    public mutating func finish() throws(ProtocolError) {
        if let failure { throw failure }
        guard hasPartialFrame else { return }
        let error: ProtocolError = pendingLength > 0
            ? .truncated(received: WireFormat.lengthSize + buffer.count,
                         expected: WireFormat.lengthSize + Int(pendingLength))
            : .truncated(received: Int(prefixCount), expected: 0)
        failure = error
        buffer = []
        pendingLength = 0
        prefixCount = 0
        throw error
    }

    /// Forgets everything, the failure included, and frees the buffer (for a reused connection slot).
    public mutating func reset() {
        buffer = []
        failure = nil
        pendingLength = 0
        prefix = 0
        prefixCount = 0
    }

    // MARK: Decoding

    @inline(__always)
    private mutating func decode(
        _ chunk: UnsafeRawBufferPointer, _ onFrame: (Frame) throws(ProtocolError) -> Void
    ) throws(ProtocolError) -> Int {
        guard let base = chunk.baseAddress, chunk.count > 0 else { return 0 }
        let end = chunk.count
        var i = 0
        var frames = 0
        while i < end {
            // Fast path: between frames with a whole header in the chunk.
            if pendingLength == 0 && prefixCount == 0 && end - i >= WireFormat.headerSize {
                let length = base.loadBigEndianUInt32(i)
                try checkLength(length)
                let type = try Self.checkType(base.load(fromByteOffset: i + 4, as: UInt8.self), length: length)
                let frameEnd = i + WireFormat.lengthSize + Int(length)
                if frameEnd <= end {
                    try onFrame(Frame.parse(base + i + 4, length: Int(length), type: type))
                    frames += 1
                    i = frameEnd
                    continue
                }
                // The frame is split: keep what arrived of it, without the prefix.
                pendingLength = length
                appendToBuffer(base + i + 4, count: end - i - 4)
                return frames
            }

            if pendingLength == 0 {
                // Gathering a split length prefix, one byte at a time (at most 4 bytes).
                prefix = prefix << 8 | UInt32(base.load(fromByteOffset: i, as: UInt8.self))
                prefixCount += 1
                i += 1
                if prefixCount == 4 {
                    let length = prefix
                    prefix = 0
                    prefixCount = 0
                    try checkLength(length)
                    pendingLength = length
                }
                continue
            }

            // Inside a frame whose prefix is known.
            let length = Int(pendingLength)
            if buffer.isEmpty {
                // The type byte is next: check it before keeping any byte.
                let type = try Self.checkType(base.load(fromByteOffset: i, as: UInt8.self), length: pendingLength)
                if end - i >= length {
                    // Only the prefix was split; the rest is contiguous here.
                    pendingLength = 0
                    try onFrame(Frame.parse(base + i, length: length, type: type))
                    frames += 1
                    i += length
                    continue
                }
                appendToBuffer(base + i, count: end - i)
                return frames
            }
            let take = min(length - buffer.count, end - i)
            appendToBuffer(base + i, count: take)
            i += take
            guard buffer.count == length else { return frames }
            pendingLength = 0
            // The type was checked when its byte arrived.
            let type = FrameType(rawValue: buffer[0]).unsafelyUnwrapped
            var thrown: ProtocolError?
            buffer.withUnsafeBytes { bytes in
                do throws(ProtocolError) {
                    try onFrame(Frame.parse(bytes.baseAddress!, length: length, type: type))
                } catch {
                    thrown = error
                }
            }
            if let thrown { throw thrown }
            frames += 1
            buffer.removeAll(keepingCapacity: buffer.capacity <= Self.retainedBufferCapacity)
        }
        return frames
    }

    @inline(__always)
    private mutating func appendToBuffer(_ start: UnsafeRawPointer, count: Int) {
        guard count > 0 else { return }
        if buffer.isEmpty {
            // Room for the whole frame when it is small; large frames grow as their bytes arrive, so a
            // peer that announces a large frame and stalls pins only what it sent.
            let length = Int(pendingLength)
            buffer.reserveCapacity(length <= Self.retainedBufferCapacity ? length : count)
        }
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: start, count: count))
    }

    @inline(__always)
    private func checkLength(_ length: UInt32) throws(ProtocolError) {
        if length == 0 { throw .zeroLength }
        if length > maxLength { throw .frameTooLarge(length: Int(length), maximum: Int(maxLength)) }
    }

    @inline(__always)
    private static func checkType(_ byte: UInt8, length: UInt32) throws(ProtocolError) -> FrameType {
        guard let type = FrameType(rawValue: byte) else { throw .unknownType(byte) }
        let bodySize = Int(length) - 1
        if bodySize < type.minimumBodySize {
            throw .bodyTooShort(type: type, bodySize: bodySize, minimum: type.minimumBodySize)
        }
        if let maximum = type.maximumBodySize, bodySize > maximum {
            throw .bodyTooLong(type: type, bodySize: bodySize, maximum: maximum)
        }
        return type
    }
}
