import CURing
import Glibc

/// The ring's fixed file table for accepted sockets (`UringFeatures.directDescriptors`): registered
/// sparse at set-up, filled by the kernel (multishot accept with `IORING_FILE_INDEX_ALLOC` picks a free
/// entry), emptied by `close_direct`.
///
/// It counts the entries in use, which only our accepts fill and our closes empty, so the driver knows
/// when the table is full without asking the kernel: a paused listener is then not re-armed into it
/// (with the table full the kernel takes the next queued connection off the queue before it finds no
/// entry, and drops it), but once an entry frees.
///
/// Why the abortive close's `SO_LINGER` goes through the ring as `SOCKET_URING_OP_SETSOCKOPT` (6.7)
/// rather than `IORING_OP_FIXED_FD_INSTALL` (6.8): the option is one SQE on the fixed index, no system
/// call, and is done before the close is submitted (the driver counts it as an operation in flight).
/// Installing a descriptor would take an entry of the process's table (failing with EMFILE exactly when
/// a server at its descriptor limit most needs to reset someone), then cost a `setsockopt` and a
/// `close` of its own, and the socket would be reachable under two names until then. Nothing else needs
/// a real descriptor: `TCP_NODELAY` is inherited from the listener, and the engine never asks an
/// accepted socket for its peer's address (`getpeername`) or an error (`SO_ERROR`).
final class DirectFileTable {
    /// Entries registered: the most direct descriptors at once.
    let size: Int
    /// Entries holding an accepted socket (or one being closed).
    private(set) var inUse = 0
    /// `SO_LINGER {1, 0}`, read by the kernel when an abortive close's option request runs (after
    /// submission): one value for every connection, kept for the table's life.
    let abortiveLinger: UnsafeMutablePointer<linger>

    private init(size: Int) {
        self.size = size
        abortiveLinger = .allocate(capacity: 1)
        abortiveLinger.initialize(to: linger(l_onoff: 1, l_linger: 0))
    }

    deinit { abortiveLinger.deallocate() }

    @inline(__always)
    var isFull: Bool { inUse >= size }

    /// An accept filled an entry.
    @inline(__always)
    func taken() { inUse += 1 }

    /// A `close_direct` emptied one.
    @inline(__always)
    func freed() { inUse -= 1 }

    /// Checks that the kernel sets a socket option through the ring, then registers a sparse table of
    /// `requested` entries (at most RLIMIT_NOFILE). nil when either is refused, with the note saying why
    /// in `notes`; a capped size is noted too. Must run on a fresh ring with nothing in flight, on the
    /// thread that created it (the probe waits for its own completion).
    static func setUp(ring: inout io_uring, requested: Int, slots: Int, counters: Counters,
                      notes: inout [String]) -> DirectFileTable? {
        counters.record(.socket)
        counters.record(.ioUringEnter)
        counters.record(.close)
        let option = curing_probe_ring_setsockopt(&ring)
        var registration: Int32? = nil
        var size = 0
        if option >= 0 {
            var limit = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            let fileLimit = Int(min(limit.rlim_cur, rlim_t(Int32.max)))
            let decided = FeatureProbe.directTableSize(requested: requested, slots: slots, fileLimit: fileLimit)
            if let note = decided.note { notes.append(note) }
            size = decided.size
            counters.record(.ioUringRegister)
            registration = io_uring_register_files_sparse(&ring, UInt32(size))
        }
        let decision = FeatureProbe.directDescriptors(setOptionResult: option, registrationResult: registration)
        if let note = decision.note { notes.append(note) }
        return decision.use ? DirectFileTable(size: size) : nil
    }
}
