import Glibc

/// Send-buffer halves of closed connections whose zero-copy notifications are still due.
///
/// A zero-copy send's notification can come long after the connection closed: the kernel frees the
/// bytes' pages only when TCP is done with them (acknowledged, or the socket torn down). The slot,
/// though, is freed at close and its `OutboundBuffer` goes to the next connection in it, which would
/// write into the half the kernel may still read. So at release the pinned half is taken from the
/// buffer (`OutboundBuffer.takePinned`) and kept here, under the closed connection's identity (slot
/// and generation, which its notifications carry in their user data), until its last notification.
///
/// Only connections closed with notifications outstanding land here: nothing per send.
package struct ZeroCopyRetainer {
    private struct Held {
        let memory: UnsafeMutableRawPointer
        var notifications: Int
    }

    private var held: [UInt64: Held] = [:]

    package init() {}

    /// Halves held now.
    package var count: Int { held.count }

    private static func key(_ id: ConnectionID) -> UInt64 { UInt64(id.slot) << 32 | UInt64(id.generation) }

    /// Keeps `memory` (malloc'ed) until `notifications` notifications for `id` came.
    package mutating func retain(_ memory: UnsafeMutableRawPointer, notifications: Int, for id: ConnectionID) {
        precondition(notifications > 0 && held[Self.key(id)] == nil, "retaining a send buffer twice, or for no notification")
        held[Self.key(id)] = Held(memory: memory, notifications: notifications)
    }

    /// A notification for `id`, a connection no longer current: frees its half at the last one. False
    /// when nothing is held for `id`.
    package mutating func notified(_ id: ConnectionID) -> Bool {
        let key = Self.key(id)
        guard var entry = held[key] else { return false }
        entry.notifications -= 1
        if entry.notifications == 0 {
            free(entry.memory)
            held[key] = nil
        } else {
            held[key] = entry
        }
        return true
    }

    /// Frees everything held: the ring is gone, so no notification will come (the kernel holds its
    /// own references to pages it still sends from).
    package mutating func releaseAll() {
        for entry in held.values { free(entry.memory) }
        held.removeAll()
    }
}
