import RingStormEngine

/// How a load run is divided among its workers — the threads of a process and the processes of
/// `load --processes` alike, and the threads of each process again: one function, so the parts always
/// agree with the whole. A part gets a contiguous run of client numbers and, in proportion, the connect
/// rate: rates are totals, whatever the number of threads and processes.
public struct WorkSplit: Sendable, Equatable {
    /// What one worker gets.
    public struct Share: Sendable, Equatable {
        /// The global number of its first client, and how many clients it runs.
        public var firstClient: Int
        public var connections: Int
        /// Its part of the connect rate (0: all at once, as the whole).
        public var connectRate: Double
        /// `--rate`: its part of the whole run's request rate (0 for other pacings). Information only:
        /// each connection's schedule follows from the whole run's rate (`Pacing.rate`), which the part
        /// keeps, so the parts' sends interleave evenly.
        public var requestRate: Double
        /// The source addresses its clients use, in order: its client `i` connects from
        /// `sources[i % sources.count]`, which is the whole run's round-robin by global client number.
        public var sources: [SocketAddress]
    }

    public let firstClient: Int
    public let connections: Int
    public let connectRate: Double
    /// This configuration's part of the whole run's request rate (`--rate`; 0 for other pacings).
    public let requestRate: Double
    public let sources: [SocketAddress]
    /// How many parts.
    public let parts: Int

    /// The split of `configuration`'s clients (from its `firstClient`) into `parts` (at most one per client).
    public init(_ configuration: LoadGenerator.Configuration, parts: Int) {
        firstClient = configuration.firstClient
        connections = configuration.connections
        connectRate = configuration.connectRate
        // This configuration's part of the whole run's rate (all of it unless it is itself a part).
        if case .rate(let perSecond, let whole) = configuration.pacing {
            requestRate = perSecond * Double(configuration.connections) / Double(max(whole, 1))
        } else {
            requestRate = 0
        }
        sources = configuration.sources
        self.parts = max(1, min(parts, configuration.connections))
    }

    /// Part `index` of `parts`: the first `connections % parts` parts have one client more.
    public func share(index: Int) -> Share {
        precondition(index >= 0 && index < parts, "share \(index) of \(parts)")
        let base = connections / parts
        let extra = connections % parts
        let count = base + (index < extra ? 1 : 0)
        let offset = index * base + min(index, extra)
        let rate = connectRate * Double(count) / Double(max(connections, 1))
        // As the connections it runs: every connection sends at the same rate.
        let requests = requestRate * Double(count) / Double(max(connections, 1))
        var own: [SocketAddress] = []
        if !sources.isEmpty {
            let start = firstClient + offset
            for i in 0..<min(count, sources.count) { own.append(sources[(start + i) % sources.count]) }
        }
        return Share(firstClient: firstClient + offset, connections: count, connectRate: rate, requestRate: requests, sources: own)
    }

    /// Every part.
    public var shares: [Share] { (0..<parts).map(share(index:)) }
}

extension LoadGenerator.Configuration {
    /// This configuration narrowed to `share`: what one worker thread or process runs.
    public func narrowed(to share: WorkSplit.Share) -> LoadGenerator.Configuration {
        var c = self
        c.runConnections = runConnections ?? connections
        c.firstClient = share.firstClient
        c.connections = share.connections
        c.connectRate = share.connectRate
        c.sources = share.sources
        return c
    }
}
