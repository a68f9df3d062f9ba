/// Writes `ringstorm` frames into memory the caller owns. Every function writes one whole frame at the
/// start of `buffer` and returns the bytes written; the buffer must hold the frame (sizes from
/// `WireFormat`), which is a precondition. Nothing allocates.
public enum FrameEncoder {
    /// REGISTER: 13 bytes.
    @inline(__always)
    @discardableResult
    public static func encodeRegister(clientID: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        encodeClientID(.register, clientID, into: buffer)
    }

    /// A REGISTER of `frameSize` bytes on the wire (at least 13): the client id followed by
    /// `frameSize - 13` bytes of registration data (`PayloadPattern`), which receivers ignore.
    @inline(__always)
    public static func encodeRegister(clientID: UInt64, frameSize: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let dataSize = max(frameSize, WireFormat.registerFrameSize) - WireFormat.registerFrameSize
        let base = header(.register, bodySize: WireFormat.registerBodySize + dataSize, into: buffer)
        base.storeBigEndian(clientID, at: 5)
        if dataSize > 0 {
            PayloadPattern.fill(base + WireFormat.registerFrameSize, count: dataSize)
        }
        return WireFormat.registerFrameSize + dataSize
    }

    /// REGISTERED: 13 bytes.
    @inline(__always)
    @discardableResult
    public static func encodeRegistered(clientID: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        encodeClientID(.registered, clientID, into: buffer)
    }

    /// REQUEST with `payloadSize` bytes of `PayloadPattern`: 21 + payloadSize bytes.
    @inline(__always)
    @discardableResult
    public static func encodeRequest(
        sequence: UInt64, timestamp: UInt64, payloadSize: Int, into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        encodeSequenced(.request, sequence, timestamp, patternOf: payloadSize, into: buffer)
    }

    /// REQUEST carrying the given payload bytes.
    @inline(__always)
    @discardableResult
    public static func encodeRequest(
        sequence: UInt64, timestamp: UInt64, payload: UnsafeRawBufferPointer, into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        encodeSequenced(.request, sequence, timestamp, payload, into: buffer)
    }

    /// RESPONSE carrying the given payload bytes (a server echoes the request's payload).
    @inline(__always)
    @discardableResult
    public static func encodeResponse(
        sequence: UInt64, timestamp: UInt64, payload: UnsafeRawBufferPointer, into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        encodeSequenced(.response, sequence, timestamp, payload, into: buffer)
    }

    /// RESPONSE with `payloadSize` bytes of `PayloadPattern`.
    @inline(__always)
    @discardableResult
    public static func encodeResponse(
        sequence: UInt64, timestamp: UInt64, payloadSize: Int, into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        encodeSequenced(.response, sequence, timestamp, patternOf: payloadSize, into: buffer)
    }

    /// ERROR with `code` and `text`. The text is cut (at a UTF-8 character boundary) to what fits in
    /// `buffer` and in `maxFrameSize`, so an ERROR always reaches a peer with the default limit.
    @discardableResult
    public static func encodeError(
        code: UInt16, text: String, maxFrameSize: Int = WireFormat.defaultMaxFrameSize,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(buffer.count >= WireFormat.errorFrameSize(textSize: 0), "buffer too small for an ERROR frame")
        let room = min(buffer.count - WireFormat.errorFrameSize(textSize: 0), maxFrameSize - 1 - WireFormat.errorFixedBodySize)
        var utf8 = Array(text.utf8.prefix(room))
        if utf8.count < text.utf8.count {
            // Drop a partial character at the cut: continuation bytes are 0b10xxxxxx.
            var end = utf8.count
            while end > 0 && utf8[end - 1] & 0xC0 == 0x80 { end -= 1 }
            if end > 0 && utf8[end - 1] >= 0xC0 { end -= 1 }
            utf8.removeSubrange(end...)
        }
        let base = header(.error, bodySize: WireFormat.errorFixedBodySize + utf8.count, into: buffer)
        base.storeBigEndian(code, at: 5)
        utf8.withUnsafeBytes { (base + 7).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return WireFormat.errorFrameSize(textSize: utf8.count)
    }

    /// ERROR for a protocol violation: its code and message.
    @discardableResult
    public static func encodeError(
        _ error: ProtocolError, maxFrameSize: Int = WireFormat.defaultMaxFrameSize, into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        encodeError(code: error.code.rawValue, text: error.message, maxFrameSize: maxFrameSize, into: buffer)
    }

    /// An `echo` protocol message: `size` bytes of `PayloadPattern` (no header; the echo protocol is raw).
    @inline(__always)
    @discardableResult
    public static func encodeEcho(size: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(buffer.count >= size, "buffer of \(buffer.count) bytes too small for a \(size)-byte echo message")
        if size > 0 { PayloadPattern.fill(buffer.baseAddress!, count: size) }
        return size
    }

    // MARK: Pieces

    @inline(__always)
    static func header(_ type: FrameType, bodySize: Int, into buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutableRawPointer {
        let frameSize = WireFormat.headerSize + bodySize
        precondition(buffer.count >= frameSize, "buffer of \(buffer.count) bytes too small for a \(frameSize)-byte \(type) frame")
        precondition(bodySize < Int(UInt32.max), "frame body of \(bodySize) bytes does not fit the 32-bit length")
        let base = buffer.baseAddress!
        base.storeBigEndian(UInt32(truncatingIfNeeded: bodySize + 1), at: 0)
        base.storeBytes(of: type.rawValue, toByteOffset: 4, as: UInt8.self)
        return base
    }

    @inline(__always)
    static func encodeClientID(_ type: FrameType, _ clientID: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let base = header(type, bodySize: WireFormat.registerBodySize, into: buffer)
        base.storeBigEndian(clientID, at: 5)
        return WireFormat.registerFrameSize
    }

    /// REQUEST or RESPONSE with `payloadSize` bytes of `PayloadPattern`.
    @inline(__always)
    static func encodeSequenced(
        _ type: FrameType, _ sequence: UInt64, _ timestamp: UInt64, patternOf payloadSize: Int,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        let base = header(type, bodySize: WireFormat.requestFixedBodySize + payloadSize, into: buffer)
        base.storeBigEndian(sequence, at: 5)
        base.storeBigEndian(timestamp, at: 13)
        PayloadPattern.fill(base + 21, count: payloadSize)
        return WireFormat.requestFrameSize(payloadSize: payloadSize)
    }

    @inline(__always)
    static func encodeSequenced(
        _ type: FrameType, _ sequence: UInt64, _ timestamp: UInt64, _ payload: UnsafeRawBufferPointer,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        let base = header(type, bodySize: WireFormat.requestFixedBodySize + payload.count, into: buffer)
        base.storeBigEndian(sequence, at: 5)
        base.storeBigEndian(timestamp, at: 13)
        if let source = payload.baseAddress, payload.count > 0 {
            (base + 21).copyMemory(from: source, byteCount: payload.count)
        }
        return WireFormat.requestFrameSize(payloadSize: payload.count)
    }
}

/// The bytes RingStorm puts in generated payloads and echo messages: "abcdefghijklmnopqrstuvwxyz012345"
/// repeated, so byte `i` of a payload is `PayloadPattern.byte(at: i)`. A peer can check it, and a
/// misframed stream shows at a glance in a packet capture.
public enum PayloadPattern {
    /// The 32-byte period.
    public static let period: [UInt8] = Array("abcdefghijklmnopqrstuvwxyz012345".utf8)

    /// 4 KiB of the pattern, copied in blocks.
    static let block: [UInt8] = (0..<4096).map { period[$0 & 31] }

    @inline(__always)
    public static func byte(at index: Int) -> UInt8 { period[index & 31] }

    /// Writes `count` pattern bytes at `destination`.
    @inline(__always)
    public static func fill(_ destination: UnsafeMutableRawPointer, count: Int) {
        guard count > 0 else { return }
        block.withUnsafeBytes { source in
            var offset = 0
            while offset < count {
                let n = min(source.count, count - offset)
                (destination + offset).copyMemory(from: source.baseAddress!, byteCount: n)
                offset += n
            }
        }
    }

    /// Whether `bytes` are the pattern starting at pattern position `offset`.
    public static func matches(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) -> Bool {
        for i in 0..<bytes.count where bytes[i] != period[(offset + i) & 31] { return false }
        return true
    }
}

/// A reusable send buffer: frames are appended into storage that grows to the largest batch seen and is
/// then reused, so steady-state encoding allocates nothing. Hand `bytes` to the engine's `send` (which
/// copies) and `removeAll()` for the next batch.
public struct FrameBuffer {
    private var storage: [UInt8]
    /// Bytes written so far.
    public private(set) var count = 0

    public init(capacity: Int = 4096) {
        storage = [UInt8](repeating: 0, count: max(capacity, 64))
    }

    public var isEmpty: Bool { count == 0 }

    /// Bytes the storage holds before it must grow.
    public var capacity: Int { storage.count }

    /// Forgets the written bytes, keeping the storage.
    @inline(__always)
    public mutating func removeAll() { count = 0 }

    /// Calls `body` with the written bytes (valid only during the call).
    @inline(__always)
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let n = count
        return try storage.withUnsafeBytes { raw in try body(UnsafeRawBufferPointer(rebasing: raw[0..<n])) }
    }

    /// Reserves `size` bytes at the end, lets `write` fill them (it returns the bytes it wrote) and
    /// advances `count`.
    @inline(__always)
    public mutating func append(reserving size: Int, _ write: (UnsafeMutableRawBufferPointer) -> Int) {
        if count + size > storage.count { grow(to: count + size) }
        let start = count
        let written = storage.withUnsafeMutableBytes { raw in
            write(UnsafeMutableRawBufferPointer(rebasing: raw[start..<(start + size)]))
        }
        precondition(written <= size, "wrote \(written) bytes into \(size) reserved")
        count += written
    }

    @inline(__always)
    public mutating func appendRegister(clientID: UInt64) {
        append(reserving: WireFormat.registerFrameSize) { FrameEncoder.encodeRegister(clientID: clientID, into: $0) }
    }

    @inline(__always)
    public mutating func appendRegistered(clientID: UInt64) {
        append(reserving: WireFormat.registerFrameSize) { FrameEncoder.encodeRegistered(clientID: clientID, into: $0) }
    }

    @inline(__always)
    public mutating func appendRequest(sequence: UInt64, timestamp: UInt64, payloadSize: Int) {
        append(reserving: WireFormat.requestFrameSize(payloadSize: payloadSize)) {
            FrameEncoder.encodeRequest(sequence: sequence, timestamp: timestamp, payloadSize: payloadSize, into: $0)
        }
    }

    @inline(__always)
    public mutating func appendResponse(sequence: UInt64, timestamp: UInt64, payload: UnsafeRawBufferPointer) {
        append(reserving: WireFormat.requestFrameSize(payloadSize: payload.count)) {
            FrameEncoder.encodeResponse(sequence: sequence, timestamp: timestamp, payload: payload, into: $0)
        }
    }

    public mutating func appendError(code: UInt16, text: String) {
        append(reserving: WireFormat.errorFrameSize(textSize: text.utf8.count)) {
            FrameEncoder.encodeError(code: code, text: text, into: $0)
        }
    }

    public mutating func appendError(_ error: ProtocolError) {
        appendError(code: error.code.rawValue, text: error.message)
    }

    @inline(__always)
    public mutating func appendEcho(size: Int) {
        append(reserving: size) { FrameEncoder.encodeEcho(size: size, into: $0) }
    }

    private mutating func grow(to needed: Int) {
        var newCount = storage.count
        while newCount < needed { newCount *= 2 }
        storage.append(contentsOf: repeatElement(0, count: newCount - storage.count))
    }
}
