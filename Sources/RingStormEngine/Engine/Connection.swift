/// Per-connection state, one element of a flat array indexed by slot, shared by both drivers.
///
/// The state is one enum per concern instead of a set of booleans, so every combination that exists
/// has a name and none that cannot happen can be written. `Docs/architecture.md` draws the
/// transitions.
package struct Connection {
    /// The socket's descriptor, or with `direct` its index in the io_uring driver's fixed file table.
    package var fd: Int32 = -1
    /// `fd` is a direct descriptor (`UringFeatures.directDescriptors`): every operation names it with
    /// `IOSQE_FIXED_FILE`, and nothing may pass it to a system call.
    package var direct = false
    package var lifecycle: Lifecycle = .free
    /// Whether the caller's side of the receive direction wants bytes.
    package var read: ReadState = .reading
    package var send: SendState = .idle
    /// The io_uring multishot receive (epoll leaves it `.idle`: readiness needs no arming).
    package var receive: ReceiveOperation = .idle
    /// io_uring: completions still due besides the receive's and the send's (cancels, a connect). The
    /// descriptor is closed only once this is 0.
    package var operationsInFlight: UInt8 = 0
    /// epoll: FIN or RST came in an edge, so the read loop goes on past a short read until it sees it.
    package var peerHungUp = false
    /// On the engine's list of connections whose queued bytes go out at the next flush.
    package var queuedForFlush = false
    /// io_uring: the send in flight is a zero-copy send (`UserData.Operation.sendZeroCopy`), which is
    /// the user data a close cancels it by.
    package var zeroCopySend = false
    package var outbound = OutboundBuffer()

    init() {}

    /// A fresh connection in `slot`'s storage, keeping the send buffer's memory for reuse.
    init(fd: Int32, lifecycle: Lifecycle, reuse outbound: OutboundBuffer, direct: Bool = false) {
        self.fd = fd
        self.direct = direct
        self.lifecycle = lifecycle
        self.outbound = outbound
    }

    /// Open to the caller: events are delivered (also while draining; a draining connection is no
    /// longer read, `ReadState.stopped`).
    @inline(__always)
    package var isOpen: Bool { lifecycle == .open || lifecycle == .draining }
}

/// Where a slot is in its life.
///
///     free ─accept─▶ open ─close(orderly, bytes queued)─▶ draining ─queue empty / send failed─┐
///     free ─connect─▶ connecting ─connected─▶ open                                              │
///     connecting / open / draining ─close─▶ closing ─nothing in flight─▶ closed ─.closed─▶ free ◀┘
///     connecting ─failed─▶ (closed ─▶) free
package enum Lifecycle: UInt8 {
    /// No connection: the slot is on the free list.
    case free
    /// The socket is open and its connect in flight.
    case connecting
    /// Accepted or connected.
    case open
    /// Open, and `close(.orderly)` was asked with bytes still queued: closes once they are sent (or a
    /// send fails, or the close deadline passes: then abortively). Takes no new sends; not read.
    case draining
    /// io_uring: the pending operations are being cancelled; the descriptor is closed through the ring
    /// once the last of their completions is in.
    case closing
    /// The descriptor is closed (epoll), or its close submitted to the ring (io_uring). The slot stays
    /// taken until the caller has been handed `.closed` (or a failed `.connected`), so a new
    /// connection cannot take the slot first and be mistaken for the old one.
    case closed
}

/// The receive direction as the caller sees it.
package enum ReadState: UInt8 {
    case reading
    /// More unsent bytes than `maxPendingBytesPerConnection`: not read until they are down to half.
    case backpressured
    /// FIN, RST or an error: nothing more is read. Absorbs backpressure (no read left to pause).
    case ended
    /// The caller closed (an orderly close draining its queue): nothing more is read, on either
    /// backend, so a peer that keeps sending costs no reads and no buffers. Absorbs backpressure.
    case stopped
}

/// The send direction.
package enum SendState: UInt8 {
    /// Nothing in the kernel (epoll: the kernel took all it would).
    case idle
    /// io_uring: one send is in flight; the next chunk waits for its completion.
    case inFlight
    /// A send failed: what was queued is dropped and later sends are ignored.
    case failed
}

/// The io_uring multishot receive of a connection, and our own cancel of it (backpressure). Both the
/// cancel's completion and the receive's last completion must be in before it is armed again.
package enum ReceiveOperation: UInt8 {
    /// Nothing armed: armed again when the connection wants to read.
    case idle
    /// A multishot receive is in the kernel.
    case armed
    /// Ended with ENOBUFS: on the starved list, re-armed (oldest first) once buffers are back.
    case starved
    /// Armed, and our cancel in flight: an ECANCELED now is ours, not the peer's outcome.
    case cancelling
    /// Our cancel completed; the receive's last completion (ECANCELED, ours) is still to come.
    case awaitingEnd
    /// The receive ended; our cancel's own completion is still to come.
    case awaitingCancel

    /// The kernel may still complete the receive.
    @inline(__always)
    package var isArmed: Bool { self == .armed || self == .cancelling || self == .awaitingEnd }
}
