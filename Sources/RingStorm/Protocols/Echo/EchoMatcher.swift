/// The `echo` protocol: no framing at all. The server sends back every byte it receives; the load
/// generator sends messages of a fixed size and counts a message answered when that many bytes have come
/// back (TCP keeps order, so the n-th `messageSize` bytes back are the n-th message's echo).
///
/// `EchoMatcher` is that count, per connection: two integers.
public struct EchoMatcher: Sendable, Equatable {
    /// Bytes of every message.
    public let messageSize: Int
    /// Bytes of the message being echoed that have come back so far (0..<messageSize).
    public private(set) var partialBytes = 0

    public init(messageSize: Int) {
        precondition(messageSize > 0, "an echo message has at least one byte")
        self.messageSize = messageSize
    }

    /// Counts `count` received bytes and returns how many messages they complete.
    @inline(__always)
    public mutating func received(_ count: Int) -> Int {
        let total = partialBytes + count
        partialBytes = total % messageSize
        return total / messageSize
    }

    /// Whether a message is partly echoed (a close now cuts it off).
    public var hasPartialMessage: Bool { partialBytes > 0 }

    public mutating func reset() { partialBytes = 0 }
}
