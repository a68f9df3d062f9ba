/// A connection as the engine's caller sees it: a slot in the engine's flat arrays plus the slot's
/// generation, so a completion or a call for a connection whose slot has since been reused is
/// recognised as stale instead of acting on the new occupant.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let slot: UInt32
    public let generation: UInt32

    public init(slot: UInt32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }

    public static let none = ConnectionID(slot: .max, generation: 0)
    public var description: String { "#\(slot).\(generation)" }
}

/// A listening socket registered with one engine.
public struct ListenerID: Hashable, Sendable {
    public let index: Int
    public init(index: Int) { self.index = index }
}
