import RingStormEngine

/// Where a connection is in the `ringstorm` protocol.
enum ConnectionState: UInt8 {
    /// No connection in this slot.
    case free
    /// Accepted; REGISTER not yet received (the register deadline runs).
    case awaitingRegister
    /// Registered; REQUESTs are answered (the idle deadline runs).
    case registered
    /// `close` was called; nothing more is read or counted until `.closed` frees the slot.
    case closing
}

/// The server's state of one connection.
struct ServerConnection {
    var state: ConnectionState = .free
    /// The engine's generation of the occupant, to match events and deadlines to it.
    var generation: UInt32 = 0
    /// When REGISTER must have arrived by (`awaitingRegister`).
    var registerDeadline: Int64 = 0
    /// When bytes last arrived (`registered`): the idle deadline is this plus the idle timeout.
    var lastActivity: Int64 = 0
}

/// Per-connection state in flat memory indexed by `ConnectionID.slot`, allocated once for the engine's
/// `maxConnections`: no allocation per connection, and no exclusivity or uniqueness check per access
/// (the storage is pointers held in `let`s). Decoders are a separate array so that decoding one
/// connection's bytes (a mutating call on its decoder) may update its state from the frame callback.
final class ConnectionTable {
    let base: UnsafeMutablePointer<ServerConnection>
    let decoders: UnsafeMutablePointer<FrameDecoder>
    let count: Int

    init(count: Int, maxFrameSize: Int) {
        self.count = max(count, 1)
        base = .allocate(capacity: self.count)
        base.initialize(repeating: ServerConnection(), count: self.count)
        decoders = .allocate(capacity: self.count)
        decoders.initialize(repeating: FrameDecoder(maxFrameSize: maxFrameSize), count: self.count)
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
        decoders.deinitialize(count: count)
        decoders.deallocate()
    }

    /// Whether `id` is the slot's current occupant and is neither closing nor closed.
    @inline(__always)
    func isLive(_ id: ConnectionID) -> Bool {
        let c = base + Int(id.slot)
        return c.pointee.generation == id.generation
            && (c.pointee.state == .awaitingRegister || c.pointee.state == .registered)
    }
}
