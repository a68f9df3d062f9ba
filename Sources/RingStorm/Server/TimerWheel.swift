/// A hashed timer wheel of connection slots: the register and idle deadlines of thousands of
/// connections without a timer (or a heap entry) per connection.
///
/// Time is cut into ticks; bucket `tick % bucketCount` holds the slots whose deadline falls in that
/// tick (or a whole number of turns later). Each slot is in at most one bucket, linked through two
/// flat arrays of indices, so inserting, moving and removing are O(1) and allocate nothing. `advance`
/// visits the buckets of the ticks that passed and hands each slot to the caller, which says whether
/// it expired; a slot whose deadline moved later (activity) is re-inserted where its deadline now falls.
/// Deadlines that only ever move later therefore cost nothing until their old bucket comes round.
/// (A class, so the callbacks of `advance` may call `remove` and `schedule` themselves.)
final class TimerWheel {
    static let none: Int32 = -1

    let tickNanoseconds: Int64
    private let mask: Int
    /// First slot of each bucket.
    private let heads: UnsafeMutablePointer<Int32>
    /// Per slot: the neighbours in its bucket, and its bucket (`none` when not in the wheel).
    private let next: UnsafeMutablePointer<Int32>
    private let previous: UnsafeMutablePointer<Int32>
    private let bucketOf: UnsafeMutablePointer<Int32>
    private let slotCount: Int
    /// The last tick whose bucket was visited.
    private var processedTick: Int64

    /// - Parameters:
    ///   - slots: the number of slots (the engine's `maxConnections`).
    ///   - buckets: rounded up to a power of two; a turn is `buckets × tick`.
    init(slots: Int, tickNanoseconds: Int64, buckets: Int = 1024, now: Int64) {
        precondition(tickNanoseconds > 0)
        var count = 1
        while count < buckets { count <<= 1 }
        self.tickNanoseconds = tickNanoseconds
        mask = count - 1
        slotCount = max(slots, 1)
        heads = .allocate(capacity: count)
        heads.initialize(repeating: Self.none, count: count)
        next = .allocate(capacity: slotCount)
        next.initialize(repeating: Self.none, count: slotCount)
        previous = .allocate(capacity: slotCount)
        previous.initialize(repeating: Self.none, count: slotCount)
        bucketOf = .allocate(capacity: slotCount)
        bucketOf.initialize(repeating: Self.none, count: slotCount)
        processedTick = now / tickNanoseconds
    }

    deinit {
        heads.deallocate()
        next.deallocate()
        previous.deallocate()
        bucketOf.deallocate()
    }

    @inline(__always)
    func contains(_ slot: Int) -> Bool { bucketOf[slot] != Self.none }

    /// Puts `slot` in the bucket of `deadline` (moving it if it is elsewhere). A deadline already due
    /// goes in the next bucket visited.
    func schedule(_ slot: Int, at deadline: Int64) {
        remove(slot)
        let tick = max(deadline / tickNanoseconds, processedTick + 1)
        let bucket = Int(truncatingIfNeeded: tick) & mask
        let head = heads[bucket]
        next[slot] = head
        previous[slot] = Self.none
        if head != Self.none { previous[Int(head)] = Int32(slot) }
        heads[bucket] = Int32(slot)
        bucketOf[slot] = Int32(bucket)
    }

    /// Takes `slot` out of the wheel if it is in it.
    @inline(__always)
    func remove(_ slot: Int) {
        let bucket = bucketOf[slot]
        guard bucket != Self.none else { return }
        let before = previous[slot], after = next[slot]
        if before != Self.none { next[Int(before)] = after } else { heads[Int(bucket)] = after }
        if after != Self.none { previous[Int(after)] = before }
        next[slot] = Self.none
        previous[slot] = Self.none
        bucketOf[slot] = Self.none
    }

    /// Visits the buckets of every tick up to `now`. For each slot in them, `deadlineOf(slot)` gives its
    /// current deadline (nil: no longer timed, drop it); a slot whose deadline has passed is removed
    /// and handed to `expire`, any other is re-inserted where its deadline falls.
    func advance(to now: Int64, deadlineOf: (Int) -> Int64?, expire: (Int) -> Void) {
        let target = now / tickNanoseconds
        guard target > processedTick else { return }
        // After a long stall, one turn visits every bucket.
        let first = max(processedTick + 1, target - Int64(mask))
        for tick in first...target {
            let bucket = Int(truncatingIfNeeded: tick) & mask
            // Detach the bucket's list, then sort each slot: expired, or back into the wheel.
            var slot = heads[bucket]
            heads[bucket] = Self.none
            while slot != Self.none {
                let s = Int(slot)
                slot = next[s]
                next[s] = Self.none
                previous[s] = Self.none
                bucketOf[s] = Self.none
                guard let deadline = deadlineOf(s) else { continue }
                if deadline <= now {
                    expire(s)
                } else {
                    processedTick = tick  // so re-insertion never lands in a bucket already passed
                    schedule(s, at: deadline)
                }
            }
            processedTick = tick
        }
    }
}
