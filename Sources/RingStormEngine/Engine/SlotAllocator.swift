/// Hands out connection slots from a free list and bumps a slot's generation each time it is released,
/// so completions and calls that still name the old occupant are recognised as stale.
package struct SlotAllocator {
    private var free: [UInt32]
    /// Shared storage: `isCurrent` reads it without touching the allocator's own (mutable) state.
    package let generations: FlatArray<UInt32>
    package private(set) var inUse = 0

    package init(capacity: Int) {
        free = (0..<UInt32(capacity)).reversed()
        generations = FlatArray(repeating: 1, count: capacity)
    }

    package var capacity: Int { generations.count }

    package mutating func allocate() -> ConnectionID? {
        guard let slot = free.popLast() else { return nil }
        inUse += 1
        return ConnectionID(slot: slot, generation: generations[Int(slot)])
    }

    package mutating func release(_ slot: UInt32) {
        // 24 bits survive in io_uring user data; wrap inside them and never use 0.
        var next = (generations[Int(slot)] &+ 1) & 0xFF_FFFF
        if next == 0 { next = 1 }
        generations[Int(slot)] = next
        free.append(slot)
        inUse -= 1
    }

    package func deallocate() { generations.deallocate() }
}

extension FlatArray where Element == UInt32 {
    /// Whether `id` still names the slot's current occupant.
    @inline(__always)
    package func isCurrent(_ id: ConnectionID) -> Bool {
        Int(id.slot) < count && self[Int(id.slot)] == id.generation
    }
}
