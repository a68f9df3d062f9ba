/// The `ringstorm` wire protocol: length-prefixed binary frames (see `Docs/protocol.md`).
///
/// ```
/// offset 0  UInt32 big-endian  length: the bytes that follow (type + body), 1...maxFrameSize
/// offset 4  UInt8              type
/// offset 5  body               length - 1 bytes, laid out by type
/// ```
public enum WireFormat {
    /// Bytes before the body: the 4-byte length and the 1-byte type.
    public static let headerSize = 5
    /// Bytes of the length prefix alone.
    public static let lengthSize = 4
    /// The largest `length` a decoder accepts unless configured otherwise: 64 KiB.
    public static let defaultMaxFrameSize = 64 * 1024

    /// Body bytes of REGISTER and REGISTERED: the client id.
    public static let registerBodySize = 8
    /// Body bytes of REQUEST and RESPONSE before the payload: sequence and timestamp.
    public static let requestFixedBodySize = 16
    /// Body bytes of ERROR before the text: the code.
    public static let errorFixedBodySize = 2

    /// Bytes on the wire of a REGISTER or REGISTERED frame (13).
    public static let registerFrameSize = headerSize + registerBodySize

    /// Bytes on the wire of a REQUEST or RESPONSE frame carrying `payloadSize` payload bytes.
    @inline(__always)
    public static func requestFrameSize(payloadSize: Int) -> Int { headerSize + requestFixedBodySize + payloadSize }

    /// Bytes on the wire of an ERROR frame whose text is `textSize` UTF-8 bytes.
    @inline(__always)
    public static func errorFrameSize(textSize: Int) -> Int { headerSize + errorFixedBodySize + textSize }

    /// The largest REQUEST/RESPONSE payload a peer with this `maxFrameSize` accepts.
    public static func maxPayloadSize(maxFrameSize: Int = defaultMaxFrameSize) -> Int {
        maxFrameSize - 1 - requestFixedBodySize
    }
}

/// The frame types of the `ringstorm` protocol; the raw value is the type byte on the wire.
public enum FrameType: UInt8, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Client → server. Body: client id (UInt64), then optional registration data (ignored).
    case register = 1
    /// Server → client. Body: the client id echoed (UInt64).
    case registered = 2
    /// Client → server. Body: sequence (UInt64), send timestamp in ns (UInt64), payload.
    case request = 3
    /// Server → client. Body: sequence (UInt64), the request's timestamp echoed (UInt64), payload.
    case response = 4
    /// Either direction. Body: code (UInt16), UTF-8 text. The sender closes after it.
    case error = 5

    public var description: String {
        switch self {
        case .register: "REGISTER"
        case .registered: "REGISTERED"
        case .request: "REQUEST"
        case .response: "RESPONSE"
        case .error: "ERROR"
        }
    }

    /// The fewest body bytes a frame of this type carries.
    @inline(__always)
    public var minimumBodySize: Int {
        switch self {
        case .register, .registered: WireFormat.registerBodySize
        case .request, .response: WireFormat.requestFixedBodySize
        case .error: WireFormat.errorFixedBodySize
        }
    }

    /// The most body bytes a frame of this type carries, when the type fixes it (nil: up to the max frame).
    @inline(__always)
    public var maximumBodySize: Int? {
        switch self {
        case .registered: WireFormat.registerBodySize
        // REGISTER may carry registration data after the client id (the seed's clients sent 75 bytes).
        case .register, .request, .response, .error: nil
        }
    }
}

/// The codes an ERROR frame carries. Codes a peer sends that are not listed here are kept as raw numbers
/// in `Frame.error(code:text:)`; `ErrorCode(rawValue:)` is nil for them.
public enum ErrorCode: UInt16, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// A frame announced a length above the receiver's maximum.
    case frameTooLarge = 1
    /// A frame's length or body does not fit its type (zero length, short or long body, cut off by EOF).
    case malformedFrame = 2
    /// A frame's type byte is not one of the protocol's types.
    case unknownType = 3
    /// A REQUEST arrived on a connection that has not registered.
    case notRegistered = 4
    /// The connection did not send REGISTER in time.
    case registerTimeout = 5
    /// A well-formed frame of a type the receiver does not accept here (a client sending RESPONSE, a
    /// second REGISTER, ...).
    case unexpectedType = 6

    public var description: String {
        switch self {
        case .frameTooLarge: "frame_too_large"
        case .malformedFrame: "malformed_frame"
        case .unknownType: "unknown_type"
        case .notRegistered: "not_registered"
        case .registerTimeout: "register_timeout"
        case .unexpectedType: "unexpected_type"
        }
    }
}

/// A violation of the protocol by the peer. The decoder stops at the first one; the receiver is expected
/// to send an ERROR frame with `code` and `message` and close.
///
/// `indirect` keeps a stored error one pointer wide, so a `FrameDecoder` stays small; an error is rare,
/// and its box is the only allocation it costs.
public indirect enum ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The length prefix announced more than the maximum frame size.
    case frameTooLarge(length: Int, maximum: Int)
    /// The length prefix is zero: not even a type byte follows.
    case zeroLength
    /// The type byte is not a known frame type.
    case unknownType(UInt8)
    /// The length leaves fewer body bytes than the type needs.
    case bodyTooShort(type: FrameType, bodySize: Int, minimum: Int)
    /// The length leaves more body bytes than the type allows.
    case bodyTooLong(type: FrameType, bodySize: Int, maximum: Int)
    /// The stream ended inside a frame: `received` of `expected` bytes arrived (the 4-byte prefix
    /// included; `expected` is 0 when even the prefix was cut off).
    case truncated(received: Int, expected: Int)
    /// A well-formed frame the receiver does not accept at this point.
    case unexpectedType(FrameType)
    /// A REQUEST before REGISTER.
    case notRegistered

    /// The ERROR code to send the peer for this violation.
    public var code: ErrorCode {
        switch self {
        case .frameTooLarge: .frameTooLarge
        case .zeroLength, .bodyTooShort, .bodyTooLong, .truncated: .malformedFrame
        case .unknownType: .unknownType
        case .unexpectedType: .unexpectedType
        case .notRegistered: .notRegistered
        }
    }

    /// One sentence naming the problem, fit for an ERROR frame's text and for logs.
    public var message: String {
        switch self {
        case .frameTooLarge(let length, let maximum):
            "frame announces \(length) bytes, more than the maximum of \(maximum)"
        case .zeroLength:
            "frame announces length 0; a frame has at least a type byte"
        case .unknownType(let byte):
            "unknown frame type \(byte) (known types are 1 to 5)"
        case .bodyTooShort(let type, let bodySize, let minimum):
            "\(type) body is \(bodySize) bytes, shorter than the \(minimum) it needs"
        case .bodyTooLong(let type, let bodySize, let maximum):
            "\(type) body is \(bodySize) bytes, longer than the \(maximum) it allows"
        case .truncated(let received, let expected):
            expected == 0
                ? "stream ended inside a frame's length prefix after \(received) of 4 bytes"
                : "stream ended inside a frame after \(received) of \(expected) bytes"
        case .unexpectedType(let type):
            "unexpected \(type) frame"
        case .notRegistered:
            "REQUEST before REGISTER"
        }
    }

    public var description: String { message }
}

/// One decoded frame: a view, valid only during the decoder's callback. `payload` and `text` point into
/// the chunk being decoded (or into the decoder's buffer for a frame that arrived split); copy what must
/// outlive the call.
@frozen
public enum Frame {
    case register(clientID: UInt64)
    case registered(clientID: UInt64)
    case request(sequence: UInt64, timestamp: UInt64, payload: UnsafeRawBufferPointer)
    case response(sequence: UInt64, timestamp: UInt64, payload: UnsafeRawBufferPointer)
    /// `code` is the raw number: `ErrorCode(rawValue: code)` for the known ones.
    case error(code: UInt16, text: UnsafeRawBufferPointer)

    public var type: FrameType {
        switch self {
        case .register: .register
        case .registered: .registered
        case .request: .request
        case .response: .response
        case .error: .error
        }
    }

    /// The text of an ERROR frame as a String (invalid UTF-8 repaired); nil for other types.
    public var errorText: String? {
        guard case .error(_, let text) = self else { return nil }
        return String(decoding: text, as: UTF8.self)
    }

    /// Parses a frame whose type and length were validated: `start` points at the type byte and
    /// `length` bytes (type + body) are readable.
    @inline(__always)
    static func parse(_ start: UnsafeRawPointer, length: Int, type: FrameType) -> Frame {
        let body = start + 1
        let bodySize = length - 1
        switch type {
        case .register:
            return .register(clientID: body.loadBigEndianUInt64(0))
        case .registered:
            return .registered(clientID: body.loadBigEndianUInt64(0))
        case .request:
            return .request(
                sequence: body.loadBigEndianUInt64(0), timestamp: body.loadBigEndianUInt64(8),
                payload: UnsafeRawBufferPointer(start: body + 16, count: bodySize - 16))
        case .response:
            return .response(
                sequence: body.loadBigEndianUInt64(0), timestamp: body.loadBigEndianUInt64(8),
                payload: UnsafeRawBufferPointer(start: body + 16, count: bodySize - 16))
        case .error:
            return .error(
                code: UInt16(bigEndian: body.loadUnaligned(as: UInt16.self)),
                text: UnsafeRawBufferPointer(start: body + 2, count: bodySize - 2))
        }
    }
}

extension UnsafeRawPointer {
    @inline(__always)
    func loadBigEndianUInt64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always)
    func loadBigEndianUInt32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}

extension UnsafeMutableRawPointer {
    @inline(__always)
    func storeBigEndian(_ value: UInt64, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }

    @inline(__always)
    func storeBigEndian(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inline(__always)
    func storeBigEndian(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }
}
