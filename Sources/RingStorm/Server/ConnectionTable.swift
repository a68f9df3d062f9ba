import RingStormEngine

/// Where a connection is, as the worker sees it (the protocol keeps its own state beside this).
enum ConnectionState: UInt8 {
    /// No connection in this slot.
    case free
    /// Accepted; not yet registered (protocols with a registration: the register deadline runs).
    case awaitingRegister
    /// Registered, or accepted by a protocol without registration: answered, the idle deadline runs.
    case open
    /// `close` was called; nothing more is read or counted until `.closed` frees the slot.
    case closing
}

/// The server's state of one connection.
struct ServerConnection {
    var state: ConnectionState = .free
    /// The engine's generation of the occupant, to match events and deadlines to it.
    var generation: UInt32 = 0
    /// When registration must have happened by (`awaitingRegister`).
    var registerDeadline: Int64 = 0
    /// When bytes last arrived (`open`): the idle deadline is this plus the idle timeout, checked only
    /// when the wheel reaches the slot's old deadline (no wheel work per message).
    var lastActivity: Int64 = 0
}

/// Per-connection state in flat memory indexed by `ConnectionID.slot`, allocated once for the engine's
/// `maxConnections`: no allocation per connection, and no exclusivity or uniqueness check per access
/// (the storage is a pointer held in a `let`).
final class ConnectionTable {
    let base: UnsafeMutablePointer<ServerConnection>
    let count: Int

    init(count: Int) {
        self.count = max(count, 1)
        base = .allocate(capacity: self.count)
        base.initialize(repeating: ServerConnection(), count: self.count)
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    /// Whether `id` is the slot's current occupant and is neither closing nor closed.
    @inline(__always)
    func isLive(_ id: ConnectionID) -> Bool {
        let c = base + Int(id.slot)
        return c.pointee.generation == id.generation
            && (c.pointee.state == .awaitingRegister || c.pointee.state == .open)
    }
}
