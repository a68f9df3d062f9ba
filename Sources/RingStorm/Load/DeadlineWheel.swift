/// A hashed timing wheel of client wake-up times, turned by one engine tick: thousands of clients'
/// deadlines (request timeouts, open-loop send times, reconnect backoffs) without one engine timer each.
///
/// Each client has at most one live entry, the earliest wake-up asked for (`wakeAt`). Asking for a later
/// one keeps the earlier entry (the client wakes early, finds nothing due and asks again); asking for an
/// earlier one adds an entry and leaves the old one stale: an entry is live only while its time equals
/// the client's `wakeAt`. Buckets keep their storage, so steady state allocates nothing. (A class, so
/// `body` in `advance` may call `wake` without overlapping access to a stored struct.)
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
    /// The next tick number to process.
    private var nextTick: Int64
    /// Scratch for a bucket being processed.
    private var due: [Entry] = []
    /// The earliest wake-up asked for since `takeEarliestRequest()` (`.max` for none): lets the owner
    /// bring its tick forward rather than ticking every millisecond whether or not anything is due.
    private var earliestRequest: Int64 = .max

    init(clients: Int, tickNanoseconds: Int64, bucketCount: Int = 4096, now: Int64) {
        precondition(bucketCount > 0 && bucketCount & (bucketCount - 1) == 0, "bucket count must be a power of two")
        self.tickNanoseconds = tickNanoseconds
        buckets = Array(repeating: [], count: bucketCount)
        mask = bucketCount - 1
        clientCount = max(clients, 1)
        wakeAt = .allocate(capacity: clientCount)
        wakeAt.initialize(repeating: 0, count: clientCount)
        nextTick = now / tickNanoseconds
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
        // Never into a bucket already passed: at worst the next one processed.
        let tick = max(time / tickNanoseconds, nextTick)
        buckets[Int(tick) & mask].append(Entry(client: UInt32(client), time: time))
    }

    /// The earliest wake-up asked for since the last call (`.max` for none), and forgets it.
    func takeEarliestRequest() -> Int64 {
        defer { earliestRequest = .max }
        return earliestRequest
    }

    /// When the first non-empty bucket is due (the end of its tick, when `advance` will process it), or
    /// nil for an empty wheel. Stale entries can make it early, by a tick that finds nothing; never late.
    func nextDue() -> Int64? {
        for offset in 0...Int64(mask) where !buckets[Int(nextTick + offset) & mask].isEmpty {
            return (nextTick + offset + 1) * tickNanoseconds
        }
        return nil
    }

    /// The end of the tick `time` falls in: when `advance` processes a wake-up asked for at `time`.
    func dueTime(of time: Int64) -> Int64 { (max(time / tickNanoseconds, nextTick) + 1) * tickNanoseconds }

    /// Forgets `client`'s wake-up (its entry turns stale).
    @inline(__always)
    func cancel(_ client: Int) { wakeAt[client] = 0 }

    /// Calls `body` for every client whose wake-up tick has fully passed by `now` (so a client wakes at
    /// most one tick late, never early), each once, after clearing its wake-up (so `body` may ask for
    /// the next one).
    func advance(to now: Int64, _ body: (Int) -> Void) {
        let endTick = now / tickNanoseconds  // exclusive: the current tick is not over
        // After a long stall, one lap covers every bucket.
        var tick = max(nextTick, endTick - Int64(mask) - 1)
        while tick < endTick {
            let index = Int(tick) & mask
            nextTick = tick + 1
            if !buckets[index].isEmpty {
                swap(&due, &buckets[index])
                for entry in due {
                    let client = Int(entry.client)
                    guard wakeAt[client] == entry.time else { continue }  // stale
                    if entry.time / tickNanoseconds <= tick {
                        wakeAt[client] = 0
                        body(client)
                    } else {
                        // A later lap of the wheel: back into its bucket.
                        buckets[index].append(entry)
                    }
                }
                due.removeAll(keepingCapacity: true)
            }
            tick += 1
        }
        nextTick = max(nextTick, endTick)
    }
}
