/// What happened, as handed to the caller of `NetworkEngine.poll`.
public enum EventKind: UInt8, Sendable {
    /// A connection was accepted on `listener`; it is open and receiving.
    case accepted
    /// Accept failed with `outcome`. If `outcome.pausesAccepting`, the listener is paused until
    /// `resumeAccepting`; otherwise the engine keeps accepting.
    case acceptFailed
    /// A connect finished. On success the connection is open and receiving; on failure its slot is
    /// already released.
    case connected
    /// Bytes arrived; `bytes` is valid only until the handler returns.
    case received
    /// The receive side ended: `closedByPeer` (FIN), `resetByPeer` (RST) or another errno. No more data
    /// follows. The connection stays open (half-closed) until `close`.
    case readEnded
    /// A send failed (`brokenPipe`, `resetByPeer`, ...); unsent bytes are dropped.
    case sendFailed
    /// `close` finished: the descriptor is closed and the slot released.
    case closed
    /// A timer scheduled with `schedule(after:token:)` fired.
    case timer
}

/// One completion, classified. A plain value in a batch: no allocation per event.
public struct Event: Sendable {
    public var kind: EventKind
    public var connection: ConnectionID
    public var outcome: Outcome
    public var listener: ListenerID
    /// Valid for `.received` only, and only during the handler call.
    public nonisolated(unsafe) var bytes: UnsafeRawBufferPointer
    public var token: UInt64

    @inline(__always)
    init(_ kind: EventKind, _ connection: ConnectionID, _ outcome: Outcome = .success,
         listener: ListenerID = ListenerID(index: -1), bytes: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
         token: UInt64 = 0) {
        self.kind = kind
        self.connection = connection
        self.outcome = outcome
        self.listener = listener
        self.bytes = bytes
        self.token = token
    }
}
