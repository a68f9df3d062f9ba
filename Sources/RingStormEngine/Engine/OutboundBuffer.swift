import Glibc

/// A connection's unsent bytes, in two halves: the one the kernel may be reading (`inFlight`, which
/// must not move until its send completes) and the one new sends append to (`queued`). When the
/// in-flight half is done the two swap, so memory is reused and bytes leave in order.
///
/// A zero-copy send (io_uring `SEND_ZC`) pins the in-flight half: the kernel may read its bytes until
/// the send's notification, after the send itself completed. While pinned, the half is not swapped back
/// for appends (new bytes wait in the queued half), not freed by `reset`, and a released connection
/// hands it over (`takePinned`) instead of leaving it to the slot's next occupant.
package struct OutboundBuffer {
    private var queued: UnsafeMutableRawPointer? = nil
    private var queuedCount = 0
    private var queuedCapacity = 0
    private var inFlight: UnsafeMutableRawPointer? = nil
    private var inFlightStart = 0
    private var inFlightEnd = 0
    private var inFlightCapacity = 0
    /// Zero-copy sends from the in-flight half whose notification is still due.
    package private(set) var pins = 0

    package init() {}

    /// Unsent bytes, both halves.
    package var count: Int { queuedCount + inFlightEnd - inFlightStart }
    package var isEmpty: Bool { count == 0 }

    package mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        if queuedCount + bytes.count > queuedCapacity {
            let capacity = max(256, (queuedCount + bytes.count).nextPowerOfTwo)
            queued = realloc(queued, capacity)
            precondition(queued != nil, "out of memory for a send buffer of \(capacity) bytes")
            queuedCapacity = capacity
        }
        (queued! + queuedCount).copyMemory(from: source, byteCount: bytes.count)
        queuedCount += bytes.count
    }

    /// The bytes to send next: the rest of the in-flight half, else the queued half (which becomes
    /// the in-flight half). Nil when nothing is left, or when the rest is queued behind a pinned
    /// in-flight half (it goes once the last notification is in).
    package mutating func nextChunk() -> UnsafeRawBufferPointer? {
        if inFlightStart == inFlightEnd {
            guard queuedCount > 0, pins == 0 else { return nil }
            swap(&queued, &inFlight)
            swap(&queuedCapacity, &inFlightCapacity)
            inFlightStart = 0
            inFlightEnd = queuedCount
            queuedCount = 0
        }
        return UnsafeRawBufferPointer(start: inFlight! + inFlightStart, count: inFlightEnd - inFlightStart)
    }

    /// Records that the kernel took `n` bytes of the chunk last returned by `nextChunk`.
    package mutating func consume(_ n: Int) {
        inFlightStart += n
        if inFlightStart == inFlightEnd { inFlightStart = 0; inFlightEnd = 0 }
    }

    /// A zero-copy send from the in-flight half was submitted: its notification is due.
    package mutating func pin() { pins += 1 }

    /// A zero-copy send's notification came (or its result said none will).
    package mutating func unpin() {
        precondition(pins > 0, "a zero-copy notification with no send pinning the buffer")
        pins -= 1
    }

    /// Drops unsent bytes; large halves are freed so an idle connection does not pin memory (a pinned
    /// in-flight half stays: the kernel may still read it).
    package mutating func reset() {
        queuedCount = 0
        inFlightStart = 0
        inFlightEnd = 0
        if queuedCapacity > 64 * 1024 { free(queued); queued = nil; queuedCapacity = 0 }
        if inFlightCapacity > 64 * 1024 && pins == 0 { free(inFlight); inFlight = nil; inFlightCapacity = 0 }
    }

    /// The pinned in-flight half and how many notifications it waits for, given away (the buffer
    /// forgets it and is unpinned): for a connection released before its notifications came, whose
    /// slot's next occupant must not write into it. Nil when nothing is pinned.
    package mutating func takePinned() -> (memory: UnsafeMutableRawPointer, notifications: Int)? {
        guard pins > 0, let memory = inFlight else { return nil }
        let taken = (memory, pins)
        inFlight = nil
        inFlightCapacity = 0
        inFlightStart = 0
        inFlightEnd = 0
        pins = 0
        return taken
    }

    package mutating func deallocate() {
        free(queued)
        free(inFlight)
        self = OutboundBuffer()
    }
}

extension Int {
    var nextPowerOfTwo: Int { self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount) }
}
