/// The 64 bits io_uring carries from a submission to its completions: which operation, on which slot,
/// for which generation of that slot. Nothing is allocated per operation and a completion is mapped
/// back to its connection by two shifts.
///
/// Layout: `operation` in bits 56–63, `generation` in bits 32–55, `slot` in bits 0–31.
struct UserData: RawRepresentable {
    enum Operation: UInt8 {
        case accept = 1, receive, send, connect, linkTimeout, cancel, cancelReceive, close
    }

    let rawValue: UInt64

    init(rawValue: UInt64) { self.rawValue = rawValue }

    @inline(__always)
    init(_ operation: Operation, slot: UInt32, generation: UInt32) {
        rawValue = UInt64(operation.rawValue) << 56 | UInt64(generation & 0xFF_FFFF) << 32 | UInt64(slot)
    }

    var operation: Operation { Operation(rawValue: UInt8(truncatingIfNeeded: rawValue >> 56)) ?? .linkTimeout }
    var slot: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
    var generation: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) & 0xFF_FFFF }
    var connection: ConnectionID { ConnectionID(slot: slot, generation: generation) }
}
