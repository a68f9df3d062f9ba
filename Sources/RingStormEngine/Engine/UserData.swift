/// The 64 bits the kernel carries back to the engine (io_uring user data, epoll event data): which
/// operation, on which slot, for which generation of that slot. Nothing is allocated per operation and a completion is mapped
/// back to its connection by two shifts.
///
/// Layout: `operation` in bits 56–63, `generation` in bits 32–55, `slot` in bits 0–31.
package struct UserData: RawRepresentable {
    package enum Operation: UInt8 {
        case accept = 1, receive, send, connect, linkTimeout, cancel, cancelReceive, close
        /// A socket option set through the ring (direct descriptors' abortive close).
        case setOption
        /// The close of a direct descriptor no connection owns (accepted without a free slot, or
        /// after its listener closed).
        case closeOrphan
        /// io_uring `SEND_ZC`: its result and, later, its notification (`IORING_CQE_F_NOTIF`) carry it.
        case sendZeroCopy
    }

    package let rawValue: UInt64

    package init(rawValue: UInt64) { self.rawValue = rawValue }

    @inline(__always)
    package init(_ operation: Operation, slot: UInt32, generation: UInt32) {
        rawValue = UInt64(operation.rawValue) << 56 | UInt64(generation & 0xFF_FFFF) << 32 | UInt64(slot)
    }

    package var operation: Operation { Operation(rawValue: UInt8(truncatingIfNeeded: rawValue >> 56)) ?? .linkTimeout }
    package var slot: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
    package var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) & 0xFF_FFFF }
    package var connection: ConnectionID { ConnectionID(slot: slot, generation: generation) }
}
