import RingStormEngine

/// The source ports a worker hands out itself (`LoadGenerator.LocalPorts.assign`): per source address,
/// a FIFO of the free ports of the worker's slice. A connect takes the port freed longest ago (so a
/// port whose last connection may still sit in TIME_WAIT is reused as late as possible) and binds to
/// it explicitly; the kernel then checks one 4-tuple instead of searching the range
/// (`__inet_hash_connect` probing port after port, each through `__inet_check_established`). Ports
/// go back when the connection is gone. Slices are disjoint between workers (`WorkSplit`), so no two
/// workers take the same port of an address. One flat array allocated at start; nothing per connect.
/// (Its storage is flat arrays written through their pointers: nothing here mutates the value itself.)
struct PortPool {
    private let storage: FlatArray<UInt16>
    private let heads: FlatArray<Int32>
    private let counts: FlatArray<Int32>
    let sources: Int
    let capacity: Int

    init(sources: Int, ports: ClosedRange<Int>) {
        self.sources = max(1, sources)
        capacity = ports.count
        storage = FlatArray(repeating: 0, count: self.sources * max(capacity, 1))
        heads = FlatArray(repeating: 0, count: self.sources)
        counts = FlatArray(repeating: Int32(capacity), count: self.sources)
        for s in 0..<self.sources {
            for (i, port) in ports.enumerated() { storage[s * capacity + i] = UInt16(port) }
        }
    }

    /// A free port for source `source`, or nil when all of the slice are taken (the caller lets the
    /// kernel choose then).
    func take(source: Int) -> UInt16? {
        guard capacity > 0, counts[source] > 0 else { return nil }
        let head = Int(heads[source])
        let port = storage[source * capacity + head]
        heads[source] = Int32((head + 1) % capacity)
        counts[source] -= 1
        return port
    }

    /// Gives `port` of `source` back (at the end of the queue).
    func give(_ port: UInt16, source: Int) {
        precondition(Int(counts[source]) < capacity, "port pool overflow")
        let tail = (Int(heads[source]) + Int(counts[source])) % capacity
        storage[source * capacity + tail] = port
        counts[source] += 1
    }

    func free(source: Int) -> Int { Int(counts[source]) }

    func deallocate() {
        storage.deallocate()
        heads.deallocate()
        counts.deallocate()
    }
}
