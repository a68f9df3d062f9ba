extension LoadReport {
    /// The load generator's own health: how late its event loop ran against its deadlines. Its tick is
    /// a timer due at a known time; a tick that runs late means the loop was busy or stalled (a slow
    /// syscall such as a connect searching for a free port), and everything measured meanwhile (latencies,
    /// timeouts) includes the generator's own delay, not only the server's.
    public struct Generator: Codable, Sendable, Equatable {
        /// Ticks run (every worker thread's).
        public var ticks = 0
        /// Ticks that ran more than `lateThresholdMicroseconds` after they were due.
        public var lateTicks = 0
        /// The latest a tick ran after it was due, µs (the worst stall of the loop).
        public var maxLagMicroseconds = 0
        /// Source ports the generator assigned (`--local-ports assign`) that bind found taken (a
        /// TIME_WAIT left without SO_REUSEADDR, another program): each cost a retry with the next port.
        public var portsInUse = 0

        /// 10 ms: well above the tick's own granularity (1 ms; epoll waits in whole milliseconds).
        public static let lateThresholdMicroseconds = 10_000

        public init() {}

        enum CodingKeys: String, CodingKey {
            case ticks
            case lateTicks = "late_ticks"
            case maxLagMicroseconds = "max_lag_us"
            case portsInUse = "ports_in_use"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ticks = try c.decode(Int.self, forKey: .ticks)
            lateTicks = try c.decode(Int.self, forKey: .lateTicks)
            maxLagMicroseconds = try c.decode(Int.self, forKey: .maxLagMicroseconds)
            portsInUse = try c.decodeIfPresent(Int.self, forKey: .portsInUse) ?? 0
        }

        /// Records a tick due at `due` that ran at `now` (monotonic nanoseconds).
        @inline(__always)
        package mutating func recordTick(due: Int64, now: Int64) {
            ticks += 1
            let lag = Int(max(0, now - due) / 1000)
            if lag > Self.lateThresholdMicroseconds { lateTicks += 1 }
            if lag > maxLagMicroseconds { maxLagMicroseconds = lag }
        }

        public mutating func merge(_ other: Generator) {
            ticks += other.ticks
            lateTicks += other.lateTicks
            maxLagMicroseconds = max(maxLagMicroseconds, other.maxLagMicroseconds)
            portsInUse += other.portsInUse
        }

        /// The warning for the text report when the loop stalled long enough to distort results (over
        /// 100 ms), nil otherwise.
        public var warning: String? {
            guard maxLagMicroseconds > 100_000 else { return nil }
            return "the load generator's own loop ran up to " + ReportFormat.decimal(Double(maxLagMicroseconds) / 1e6, places: 3)
                + " s late (" + ReportFormat.count(lateTicks) + " of " + ReportFormat.count(ticks)
                + " ticks over 10 ms late): latencies and timeouts include its own stalls, not only the server's"
        }
    }
}
