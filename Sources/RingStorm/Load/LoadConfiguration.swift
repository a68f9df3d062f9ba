import RingStormEngine

extension LoadGenerator {
    /// What the clients speak. Each case's client side is a `ClientProtocol` type, named in
    /// `WireProtocol.withClient`.
    public enum WireProtocol: String, Sendable, Codable, CaseIterable {
        /// `ringstorm` frames: REGISTER first, then REQUEST/RESPONSE (see `Docs/protocol.md`).
        case ringstorm
        /// Raw bytes: fixed-size messages, answered when as many bytes have come back.
        case echo
        /// The user's own protocol: messages from templates, responses found by a framing (`RawOptions`).
        case raw
        /// HTTP/1.1 keep-alive, one request or a pipeline in flight (`HTTPOptions`).
        case http
    }

    /// When a connection sends its next request.
    public enum Pacing: Sendable, Equatable, Codable {
        /// One request every `intervalNanoseconds` per connection, whether or not the last one was
        /// answered. Latency runs from the *intended* send time, so a stall is not hidden by sending
        /// late (coordinated omission). The connections' schedules are spread over one interval by
        /// client number, as for `rate` (`firstSendTime(client:runConnections:now:)`): N connections send
        /// one request every interval / N overall, not N at once every interval.
        case openLoop(intervalNanoseconds: Int64)
        /// Open loop at a whole-run rate (`--rate`): `requestsPerSecond` over the run's `connections` (all
        /// threads and processes together), sends evenly spaced overall. Each connection sends every
        /// `connections / requestsPerSecond` seconds; client `g` (its global number) on the grid of
        /// times `≡ g / requestsPerSecond` modulo that interval, on the machine's monotonic clock. Its
        /// schedule depends only on these two whole-run numbers and `g`, so however `WorkSplit` divides
        /// the clients among threads and processes, together they send one request every
        /// `1 / requestsPerSecond` s, not bursts; a part's share of the rate is `WorkSplit.Share.requestRate`.
        case rate(requestsPerSecond: Double, connections: Int)
        /// The next request when a response arrives, `pipeline` requests in flight.
        case closedLoop(pipeline: Int)
        /// Connect and send nothing, like a telnet that says nothing: no registration, no request. The
        /// connection is held until the end of the run; what the server does to it (FIN: `closed`, RST:
        /// `reset`) is counted in phase `idle`, and bytes it sends are ignored. One still open at the end
        /// saw nothing.
        case silent
    }

    /// Who picks each connection's source port (`Docs/load.md`, "Ramping").
    public enum LocalPorts: String, Sendable, Codable, CaseIterable {
        /// The kernel searches the whole ephemeral range for each connect.
        case kernel
        /// The kernel searches only the worker's own slice of the range (`IP_LOCAL_PORT_RANGE`,
        /// kernel 6.3; older kernels fall back to `kernel` with a note).
        case range
        /// The generator binds each connection to a port of its own slice, per source address, taking
        /// the port freed longest ago first: connect checks one 4-tuple and searches nothing.
        case assign
    }

    /// A load run, as a value: everything `ringstorm load` takes on its command line.
    public struct Configuration: Sendable, Codable {
        /// Where to connect.
        public var target: SocketAddress
        /// Clients, each with at most one connection at a time.
        public var connections: Int = 100
        /// Connections started per second (reconnects included), in total over all threads (and worker
        /// processes: see `WorkSplit`); 0: all at once.
        public var connectRate: Double = 0
        /// How long the run lasts; then the generator closes its own connections.
        package var durationNanoseconds: Int64 = 10_000_000_000
        public var wireProtocol: WireProtocol = .ringstorm
        /// Echo only: bytes sent first and awaited back before requests start (0: none). It is the echo
        /// protocol's "registration" (phase `register`).
        public var firstMessageSize: Int = 0
        public var pacing: Pacing = .closedLoop(pipeline: 1)
        /// Payload bytes of a REQUEST (`ringstorm`) or bytes of a message (`echo`).
        public var messageSize: Int = 64
        /// The engine abandons a connect after this (outcome `connect_timeout`); 0: the kernel's own.
        package var connectTimeoutNanoseconds: Int64 = 5_000_000_000
        /// A request (or REGISTER) unanswered this long ends the connection with `response_timeout`.
        package var requestTimeoutNanoseconds: Int64 = 5_000_000_000
        /// Reconnect after a failure, after a backoff doubling from `reconnectMinimum` to `reconnectMaximum`.
        public var reconnect: Bool = false
        package var reconnectMinimumNanoseconds: Int64 = 100_000_000
        package var reconnectMaximumNanoseconds: Int64 = 5_000_000_000
        /// Spreads each reconnect wait over `[backoff, backoff × (1 + jitter)]` (0: none), as real clients
        /// do so that clients reset together do not come back together. The spread is a hash of the client
        /// and its attempt number: reproducible, and no random-number syscall on the run loop.
        public var reconnectJitter: Double = 0
        /// Local addresses to connect from, round-robin by client (empty: the kernel chooses).
        public var sources: [SocketAddress] = []
        /// Who picks source ports, and from which ports (nil: the system's ephemeral range,
        /// `net.ipv4.ip_local_port_range`); `WorkSplit` gives each worker a disjoint slice of it.
        public var localPorts: LocalPorts = .range
        public var localPortRange: ClosedRange<Int>?
        public var backend: Backend = .uring
        /// Engine threads; clients and the connect rate are split evenly among them (`WorkSplit`).
        public var threads: Int = 1
        /// Where to write one JSON line per connection lifecycle (nil: nowhere).
        public var connectionsLogPath: String?
        /// The largest frame accepted from the server.
        public var maxFrameSize: Int = WireFormat.defaultMaxFrameSize
        /// The first client's id in REGISTER; client `i` registers as `clientIDBase + i`.
        public var clientIDBase: UInt64 = 1
        /// The number of this generator's first client among all (0 unless it is one worker process of
        /// several): client `i` is `firstClient + i` in REGISTER ids, the connections log and the
        /// round-robin over `sources`, so worker processes never share a client id.
        public var firstClient: Int = 0
        /// `ringstorm` only: bytes of the REGISTER frame on the wire. The default, 13, is the bare frame
        /// (client id only); more pads it with registration data (`PayloadPattern`), which the server
        /// ignores, e.g. 75 to send the seed's 75-byte registration in one segment.
        public var registrationSize: Int = WireFormat.registerFrameSize
        /// Whether opening `connectionsLogPath` truncates it (worker processes append to the file their
        /// parent truncated).
        public var truncateConnectionsLog = true
        /// The send-side bound: a connection with this many unsent bytes (queued in the engine, not
        /// yet taken by the kernel) produces no further request until they drain; each request not
        /// produced counts as `requests.held_back`. A connection's send queue therefore holds at most
        /// this plus one request. 0: no bound.
        public var maxUnsentBytesPerConnection: Int = 256 * 1024
        /// After the deadline, how long to wait for our own closes to finish.
        package var drainNanoseconds: Int64 = 1_000_000_000
        /// The time series' interval (`--report-interval`): each worker closes an interval at every
        /// wall-clock multiple of it (`LoadInterval`).
        public var reportIntervalNanoseconds: Int64 = 1_000_000_000
        /// `--shard I/N`: this run is shard `index` (from 0) of `count`; its configuration is already its
        /// share (`WorkSplit.shard`). Recorded in the report's provenance.
        public var shard: Shard?
        /// `--start-at`: the wall clock (Unix ns) every shard starts at; nil: at once.
        public var startAtNanoseconds: Int64?
        /// How late past `startAtNanoseconds` a start may be before the report says so.
        public var startToleranceNanoseconds: Int64 = 100_000_000
        /// `raw` only: the messages and the response framing.
        public var raw = RawOptions()
        /// `http` only: the request and the response limits.
        public var http = HTTPOptions()
        /// Engine settings (slots are sized from `connections` regardless).
        public var engine = EngineConfiguration()
        /// The whole run's connections when this configuration is one part of it (`narrowed(to:)`), nil
        /// for the whole run itself: `--interval` spreads the clients' send times over the run's clients,
        /// not the part's, so the parts' sends interleave.
        public var runConnections: Int?
        /// Open loop: how long before a send is due the worker's wait stops sleeping and spins on the
        /// clock (`EngineConfiguration.spinNanoseconds`, which the worker sets from this); 0: never.
        public var sendSpinNanoseconds: Int64 = LoadGenerator.Configuration.defaultSendSpinNanoseconds

        public init(target: SocketAddress) { self.target = target }

        /// Requests one connection may have in flight at once.
        var maxInFlight: Int {
            switch pacing {
            case .closedLoop(let pipeline): return max(1, pipeline)
            case .silent: return 1
            case .openLoop, .rate:
                // Beyond timeout/interval (+ slack for a late loop) the oldest has timed out anyway.
                let n = requestTimeoutNanoseconds / max(pacing.openLoopIntervalNanoseconds ?? 1, 1) + 3
                return Int(min(max(n, 1), 1024))
            }
        }

        /// The reconnect wait after `backoff` for client `client`'s attempt `attempt`, with the jitter.
        @inline(__always)
        public func jittered(_ backoff: Int64, client: Int, attempt: UInt32) -> Int64 {
            guard reconnectJitter > 0 else { return backoff }
            // SplitMix64 of (client, attempt): a uniform fraction in [0, 1).
            var z = UInt64(truncatingIfNeeded: client) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(attempt) &* 0xD1B5_4A32_D192_ED03
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let fraction = Double(z >> 11) / Double(UInt64(1) << 53)
            return backoff + Int64(Double(backoff) * reconnectJitter * fraction)
        }
    }
}

extension LoadGenerator.Pacing {
    /// Open loop: each connection's interval between sends; nil for the closed loop and silent clients.
    public var openLoopIntervalNanoseconds: Int64? {
        switch self {
        case .openLoop(let interval): return interval
        case .rate(let perSecond, let connections):
            guard perSecond > 0 && perSecond.isFinite else { return nil }
            return max(1, Int64((Double(max(connections, 1)) * 1e9 / perSecond).rounded()))
        case .closedLoop, .silent: return nil
        }
    }

    /// `--rate`: when global client `client` first sends at or after `now` (monotonic nanoseconds): the
    /// next point of its grid (see `rate`; the rate carries the whole run's connections). nil for other
    /// pacings (they send at once).
    public func firstSendTime(client: Int, now: Int64) -> Int64? {
        guard case .rate(_, let connections) = self else { return nil }
        return firstSendTime(client: client, runConnections: connections, now: now)
    }

    /// Open loop (`--interval` or `--rate`): when global client `client` of a run of `runConnections`
    /// first sends at or after `now`: the next time `≡ client × interval / runConnections` modulo the
    /// interval on the monotonic clock. So the run's connections send one request every
    /// interval / runConnections overall, whenever each connected and whichever thread or process runs
    /// it (they share the clock). `--rate R` is the same grid with the interval N / R (client g at g / R),
    /// over the N connections it carries. nil for the closed loop and silent clients (they send at once).
    public func firstSendTime(client: Int, runConnections: Int, now: Int64) -> Int64? {
        let n: Int
        switch self {
        case .rate(_, let connections): n = max(connections, 1)
        case .openLoop(let interval):
            guard interval > 0 else { return now }
            n = max(runConnections, 1)
        case .closedLoop, .silent: return nil
        }
        guard let interval = openLoopIntervalNanoseconds else { return nil }
        // 128-bit product: client × interval overflows Int64 past ~9e18 (e.g. a 1 h interval × 3M clients).
        let product = Int64(client % n).multipliedFullWidth(by: interval)
        let phase = Int64(truncatingIfNeeded: Int64(n).dividingFullWidth(product).quotient) % interval
        return now + ((phase - now) % interval + interval) % interval
    }
}

extension LoadGenerator.Configuration {
    /// The default `sendSpinNanoseconds` (`--send-spin`), chosen by measurement (`Docs/benchmarks.md`).
    public static let defaultSendSpinNanoseconds: Int64 = 0

    /// When global client `client` first sends at or after `now`: its point of the whole run's grid
    /// (`Pacing.firstSendTime(client:runConnections:now:)`); nil when it sends at once.
    public func firstSendTime(client: Int, now: Int64) -> Int64? {
        pacing.firstSendTime(client: client, runConnections: runConnections ?? connections, now: now)
    }
}
