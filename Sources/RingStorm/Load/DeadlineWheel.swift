/// The client wake-up times of one load worker (request timeouts, open-loop send times, reconnect
/// backoffs), to the nanosecond, without one engine timer each: a hashed wheel of 1 ms buckets for what
/// is far off, and a min-heap for what is near.
///
/// Why two levels: an open-loop send must leave within microseconds of its intended time, so a wake-up
/// fires at its own time, not at the end of a tick; a heap of every deadline would cost a log n
/// step per request timeout too, thousands of which sit seconds ahead. So a bucket of the wheel is moved
/// into the heap (`near`) only when its millisecond comes up (`loadedTick`); everything at or before that
/// millisecond is in the heap, in time order, and fires as soon as its time has come (`advance`), and
/// `nextDue` is the earliest of them exactly. Bucket and heap keep their storage: steady state allocates
/// nothing.
///
/// Each client has at most one live entry, the earliest wake-up asked for (`wakeAt`). Asking for a later
/// one keeps the earlier entry (the client wakes early, finds nothing due and asks again); asking for an
/// earlier one adds an entry and leaves the old one stale: an entry is live only while its time equals
/// the client's `wakeAt`. (A class, so `body` in `advance` may call `wake` without overlapping access.)
final class DeadlineWheel {
    private struct Entry {
        var client: UInt32
        var time: Int64
    }

    let tickNanoseconds: Int64
    private var buckets: [[Entry]]
    private let mask: Int
    /// Per client: the time of its live entry, 0 for none.
    private let wakeAt: UnsafeMutablePointer<Int64>
    private let clientCount: Int
    /// Every entry of a tick up to this one is in `near`; later ones are in their buckets.
    private var loadedTick: Int64
    /// A binary min-heap by time of the entries up to `loadedTick`.
    private var near: [Entry] = []
    /// Entries in buckets (live or stale): none means the wheel is the heap alone.
    private var bucketed = 0
    /// Scratch for entries being fired or moved.
    private var due: [Entry] = []
    /// The earliest wake-up asked for since `takeEarliestRequest()` (`.max` for none): lets the owner
    /// bring its timer forward to it.
    private var earliestRequest: Int64 = .max

    init(clients: Int, tickNanoseconds: Int64, bucketCount: Int = 4096, now: Int64) {
        precondition(bucketCount > 0 && bucketCount & (bucketCount - 1) == 0, "bucket count must be a power of two")
        self.tickNanoseconds = tickNanoseconds
        buckets = Array(repeating: [], count: bucketCount)
        mask = bucketCount - 1
        clientCount = max(clients, 1)
        wakeAt = .allocate(capacity: clientCount)
        wakeAt.initialize(repeating: 0, count: clientCount)
        loadedTick = now / tickNanoseconds - 1
    }

    deinit {
        wakeAt.deinitialize(count: clientCount)
        wakeAt.deallocate()
    }

    /// Asks for `client` to be woken at `time` (or earlier, if it already asked for earlier).
    @inline(__always)
    func wake(_ client: Int, at time: Int64) {
        let current = wakeAt[client]
        if current != 0 && current <= time { return }
        wakeAt[client] = time
        if time < earliestRequest { earliestRequest = time }
        let entry = Entry(client: UInt32(client), time: time)
        if time / tickNanoseconds <= loadedTick {
            push(entry)
        } else {
            buckets[Int(time / tickNanoseconds) & mask].append(entry)
            bucketed += 1
        }
    }

    /// The earliest wake-up asked for since the last call (`.max` for none), and forgets it.
    func takeEarliestRequest() -> Int64 {
        defer { earliestRequest = .max }
        return earliestRequest
    }

    /// When the earliest entry is due (exactly its time), or nil for an empty wheel. A stale entry can
    /// make it early (a wake-up that finds nothing); never late. Moves the next non-empty bucket into
    /// the heap when the heap is empty, so the answer is exact.
    func nextDue() -> Int64? {
        var scanned = 0
        while near.isEmpty && bucketed > 0 && scanned <= mask {
            load(tick: loadedTick + 1)
            scanned += 1
        }
        if let first = near.first { return first.time }
        // Only entries a lap or more ahead: wake when the next lap begins, to look again.
        return bucketed > 0 ? (loadedTick + 1) * tickNanoseconds : nil
    }

    /// Forgets `client`'s wake-up (its entry turns stale).
    @inline(__always)
    func cancel(_ client: Int) { wakeAt[client] = 0 }

    /// Calls `body` for every client whose wake-up time is at or before `now` (never early), each once,
    /// after clearing its wake-up (so `body` may ask for the next one, which fires at a later call).
    func advance(to now: Int64, _ body: (Int) -> Void) {
        // Bring in every bucket whose millisecond has begun; after a long stall, one lap covers them all.
        let nowTick = now / tickNanoseconds
        if loadedTick < nowTick {
            var tick = max(loadedTick + 1, nowTick - Int64(mask))
            while tick <= nowTick {
                load(tick: tick)
                tick += 1
            }
        }
        while let first = near.first, first.time <= now {
            due.append(pop())
        }
        for entry in due {
            let client = Int(entry.client)
            guard wakeAt[client] == entry.time else { continue }  // stale
            wakeAt[client] = 0
            body(client)
        }
        due.removeAll(keepingCapacity: due.capacity <= Self.keptCapacity)
    }

    /// Storage kept by the scratch array and by an emptied bucket, in entries (1 KiB). `load` swaps the
    /// scratch's storage into the bucket it empties, so without a cap every one of the 4,096 buckets
    /// drifts up to the largest burst ever seen (a churn soak grew the load's RSS 5 MB in 2 minutes and
    /// it would reach 4,096 × the largest burst); with it a worker keeps at most ~4 MiB, and only bursts
    /// of more than 64 wake-ups in one millisecond allocate.
    static let keptCapacity = 64

    /// Entries' storage the wheel holds now (buckets, heap and scratch), for tests of the bound above.
    var retainedCapacity: Int { buckets.reduce(0) { $0 + $1.capacity } + near.capacity + due.capacity }

    /// Moves bucket `tick`'s live entries of that tick into the heap (entries of a later lap stay), and
    /// marks the tick loaded.
    private func load(tick: Int64) {
        loadedTick = max(loadedTick, tick)
        let index = Int(tick) & mask
        guard !buckets[index].isEmpty else { return }
        swap(&due, &buckets[index])
        bucketed -= due.count
        for entry in due where wakeAt[Int(entry.client)] == entry.time {
            if entry.time / tickNanoseconds <= loadedTick {
                push(entry)
            } else {
                buckets[index].append(entry)
                bucketed += 1
            }
        }
        if buckets[index].isEmpty && buckets[index].capacity > Self.keptCapacity { buckets[index] = [] }
        due.removeAll(keepingCapacity: due.capacity <= Self.keptCapacity)
    }

    // MARK: The heap

    private func push(_ entry: Entry) {
        near.append(entry)
        var i = near.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard near[parent].time > near[i].time else { break }
            near.swapAt(parent, i)
            i = parent
        }
    }

    private func pop() -> Entry {
        let top = near[0]
        let last = near.removeLast()
        if !near.isEmpty {
            near[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < near.count && near[l].time < near[m].time { m = l }
                if r < near.count && near[r].time < near[m].time { m = r }
                if m == i { break }
                near.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
