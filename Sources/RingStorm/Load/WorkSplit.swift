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
        /// Its slice of the local port range: the parts' slices are disjoint and cover the whole, so
        /// no two workers ever probe or bind the same port of a source address.
        public var localPorts: ClosedRange<Int>
    }

    public let firstClient: Int
    public let connections: Int
    public let connectRate: Double
    /// This configuration's part of the whole run's request rate (`--rate`; 0 for other pacings).
    public let requestRate: Double
    public let sources: [SocketAddress]
    public let localPorts: ClosedRange<Int>
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
        localPorts = configuration.localPortRange ?? EphemeralPorts.system
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
        return Share(firstClient: firstClient + offset, connections: count, connectRate: rate, requestRate: requests, sources: own,
                     localPorts: Self.portSlice(localPorts, index: index, parts: parts))
    }

    /// Slice `index` of `parts` of `ports`: contiguous, disjoint, together exactly `ports`. With fewer
    /// ports than parts, every part shares the whole range (the kernel then arbitrates).
    static func portSlice(_ ports: ClosedRange<Int>, index: Int, parts: Int) -> ClosedRange<Int> {
        guard ports.count >= parts else { return ports }
        let low = ports.lowerBound + ports.count * index / parts
        let high = ports.lowerBound + ports.count * (index + 1) / parts - 1
        return low...high
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
        c.localPortRange = share.localPorts
        return c
    }
}

/// `--shard I/N`: this run is part `index` (from 0, as Kubernetes' `JOB_COMPLETION_INDEX`) of `count`
/// runs on other hosts, which together make one load. Its share is `WorkSplit`'s part `index` of `count`,
/// the same cut as threads and
/// processes: client numbers, connections, connect rate and source addresses do not overlap and add up
/// to the whole run's. (A whole-run request rate, when there is one, is split here in proportion too.)
public struct Shard: Codable, Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    /// Why a shard cannot be taken; the command words each with its flags.
    public enum Problem: Error, Equatable, Sendable {
        /// Not `I/N` with whole numbers.
        case notIndexOfCount(String)
        /// `I` outside 0..<N, or N below 1.
        case outOfRange(index: Int, count: Int)
        /// `auto` without `JOB_COMPLETION_INDEX`, or with one that is not a number.
        case indexMissing(String?)
        /// `auto` without a count (flag or `RINGSTORM_SHARD_COUNT`), or one that is not a number.
        case countMissing(String?)
        /// More shards than connections: a shard would have none.
        case moreShardsThanConnections(shards: Int, connections: Int)
    }

    /// `I/N`, I from 0 to N - 1.
    public init(parsing text: String) throws(Problem) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else { throw .notIndexOfCount(text) }
        guard n >= 1, (0..<n).contains(i) else { throw .outOfRange(index: i, count: n) }
        self.init(index: i, count: n)
    }

    /// `--shard auto`: the index from `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job's, from 0) and the
    /// count from `count` (a flag), else `RINGSTORM_SHARD_COUNT`.
    public static func automatic(count: Int?, environment: [String: String]) throws(Problem) -> Shard {
        let rawIndex = environment["JOB_COMPLETION_INDEX"]
        guard let rawIndex, let index = Int(rawIndex) else { throw .indexMissing(rawIndex) }
        let rawCount = environment["RINGSTORM_SHARD_COUNT"]
        guard let n = count ?? rawCount.flatMap({ Int($0) }) else { throw .countMissing(rawCount) }
        guard n >= 1, (0..<n).contains(index) else { throw .outOfRange(index: index, count: n) }
        return Shard(index: index, count: n)
    }
}

extension LoadGenerator.Configuration {
    /// This run's share as shard `shard`: the whole run's configuration narrowed to part `index` of
    /// `count` (`WorkSplit`), remembering the shard for the report.
    public func sharded(_ shard: Shard) throws(Shard.Problem) -> LoadGenerator.Configuration {
        guard shard.count <= connections else { throw .moreShardsThanConnections(shards: shard.count, connections: connections) }
        var c = narrowed(to: WorkSplit(self, parts: shard.count).share(index: shard.index))
        c.shard = shard
        return c
    }
}
