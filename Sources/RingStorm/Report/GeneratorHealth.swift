extension LoadReport {
    /// The load generator's own health: whether it, not the server, limited or distorted the run.
    ///
    /// - Loop lag: the worker's tick is a timer due at a known time; a tick that runs late means the
    ///   loop was busy or stalled (a slow syscall such as a connect searching for a free port).
    /// - Time inside submits: the kernel's work on what the generator hands it, on the generator's own
    ///   thread (io_uring: `io_uring_enter` calls that do not wait; epoll: the write-through sends), and
    ///   inside `connect` calls (socket, bind and the kernel's port search).
    /// - CPU: each worker thread's user and system time (`getrusage(RUSAGE_THREAD)`); a worker near a
    ///   full core cannot send on time.
    /// - The kernel dropping work: completion queue overflows, receives out of provided buffers (ENOBUFS).
    ///
    /// `warnings(sendLag:)` turns these into sentences naming what they distort and the fix.
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
        /// Total time inside submits (see above), µs, over all workers.
        public var submitMicroseconds = 0
        /// Total time inside `connect` calls, µs, and the longest single one.
        public var connectCallMicroseconds = 0
        public var maxConnectCallMicroseconds = 0
        /// CPU time of all worker threads (user + system), seconds.
        public var cpuSeconds = 0.0
        /// The busiest worker thread's CPU time over its run time (1.0: one full core).
        public var maxWorkerCPU = 0.0
        /// io_uring completion queue overflows (completions the kernel had to hold back).
        public var completionQueueOverflows = 0
        /// Times a receive found no provided buffer (ENOBUFS) and waited for one.
        public var bufferExhaustions = 0

        /// 10 ms: a tick this late is counted in `lateTicks`.
        public static let lateThresholdMicroseconds = 10_000
        /// A loop stall past this (100 ms) distorts latencies and timeouts: warned.
        public static let stallWarningMicroseconds = 100_000
        /// Send lag p99 past this (1 ms) means the generator sends late: warned.
        public static let sendLagWarningMicroseconds: UInt64 = 1_000
        /// A worker busier than this (90% of a core) is at its limit: warned.
        public static let busyWorkerCPU = 0.9

        public init() {}

        enum CodingKeys: String, CodingKey {
            case ticks
            case lateTicks = "late_ticks"
            case maxLagMicroseconds = "max_lag_us"
            case portsInUse = "ports_in_use"
            case submitMicroseconds = "submit_us"
            case connectCallMicroseconds = "connect_call_us"
            case maxConnectCallMicroseconds = "max_connect_call_us"
            case cpuSeconds = "cpu_s"
            case maxWorkerCPU = "max_worker_cpu"
            case completionQueueOverflows = "cq_overflows"
            case bufferExhaustions = "buffer_exhaustions"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ticks = try c.decode(Int.self, forKey: .ticks)
            lateTicks = try c.decode(Int.self, forKey: .lateTicks)
            maxLagMicroseconds = try c.decode(Int.self, forKey: .maxLagMicroseconds)
            portsInUse = try c.decodeIfPresent(Int.self, forKey: .portsInUse) ?? 0
            // Reports written before these fields existed have none.
            submitMicroseconds = try c.decodeIfPresent(Int.self, forKey: .submitMicroseconds) ?? 0
            connectCallMicroseconds = try c.decodeIfPresent(Int.self, forKey: .connectCallMicroseconds) ?? 0
            maxConnectCallMicroseconds = try c.decodeIfPresent(Int.self, forKey: .maxConnectCallMicroseconds) ?? 0
            cpuSeconds = try c.decodeIfPresent(Double.self, forKey: .cpuSeconds) ?? 0
            maxWorkerCPU = try c.decodeIfPresent(Double.self, forKey: .maxWorkerCPU) ?? 0
            completionQueueOverflows = try c.decodeIfPresent(Int.self, forKey: .completionQueueOverflows) ?? 0
            bufferExhaustions = try c.decodeIfPresent(Int.self, forKey: .bufferExhaustions) ?? 0
        }

        /// Records a tick due at `due` that ran at `now` (monotonic nanoseconds).
        @inline(__always)
        package mutating func recordTick(due: Int64, now: Int64) {
            ticks += 1
            let lag = Int(max(0, now - due) / 1000)
            if lag > Self.lateThresholdMicroseconds { lateTicks += 1 }
            if lag > maxLagMicroseconds { maxLagMicroseconds = lag }
        }

        /// Records a `connect` call that took `nanoseconds`.
        @inline(__always)
        package mutating func recordConnectCall(nanoseconds: Int64) {
            let us = Int(max(0, nanoseconds) / 1000)
            connectCallMicroseconds += us
            if us > maxConnectCallMicroseconds { maxConnectCallMicroseconds = us }
        }

        /// Counts summed; worst cases (lag, longest connect call, busiest worker) kept.
        public mutating func merge(_ other: Generator) {
            ticks += other.ticks
            lateTicks += other.lateTicks
            maxLagMicroseconds = max(maxLagMicroseconds, other.maxLagMicroseconds)
            portsInUse += other.portsInUse
            submitMicroseconds += other.submitMicroseconds
            connectCallMicroseconds += other.connectCallMicroseconds
            maxConnectCallMicroseconds = max(maxConnectCallMicroseconds, other.maxConnectCallMicroseconds)
            cpuSeconds += other.cpuSeconds
            maxWorkerCPU = max(maxWorkerCPU, other.maxWorkerCPU)
            completionQueueOverflows += other.completionQueueOverflows
            bufferExhaustions += other.bufferExhaustions
        }

        /// The loop-stall warning alone (kept for callers that have no send lag).
        public var warning: String? { warnings(sendLag: LatencySummary()).first }

        /// One sentence per way the generator may have been the bottleneck: what happened, what it
        /// distorts, and the fix. Empty when it kept up.
        public func warnings(sendLag: LatencySummary) -> [String] {
            var out: [String] = []
            if maxLagMicroseconds > Self.stallWarningMicroseconds {
                var text = "the load generator's own loop ran up to " + ReportFormat.decimal(Double(maxLagMicroseconds) / 1e6, places: 3)
                    + " s late (" + ReportFormat.count(lateTicks) + " of " + ReportFormat.count(ticks)
                    + " ticks over 10 ms late): latencies and timeouts include its own stalls, not only the server's"
                if maxConnectCallMicroseconds * 2 > maxLagMicroseconds {
                    text += "; it was stalled for " + ReportFormat.decimal(Double(maxConnectCallMicroseconds) / 1e6, places: 3)
                        + " s in connect: a port search near exhaustion; add --source addresses or lower --connect-rate"
                } else {
                    text += "; add --threads or --processes, or use fewer connections"
                }
                out.append(text)
            }
            if sendLag.count > 0 && sendLag.p99 > Self.sendLagWarningMicroseconds {
                out.append("send lag p99 " + ReportFormat.count(sendLag.p99) + " µs: the load generator sent late, so the "
                    + "request latency (from the intended send) includes its own delay and the rate it kept was lower than asked; "
                    + "compare `response` (actual send to response), and add --threads or --processes, or use fewer connections")
            }
            if maxWorkerCPU >= Self.busyWorkerCPU {
                out.append("a load worker thread used " + ReportFormat.decimal(maxWorkerCPU * 100, places: 0)
                    + "% of a core: the generator is at its limit and requests/s and latencies may be its own; add --threads or --processes")
            }
            if completionQueueOverflows > 0 {
                out.append("the io_uring completion queue overflowed " + ReportFormat.count(completionQueueOverflows)
                    + " times: completions waited in the kernel and latencies grew by the generator's backlog; add --threads or use fewer connections per thread")
            }
            if bufferExhaustions > 0 {
                out.append("receives ran out of provided buffers (ENOBUFS) " + ReportFormat.count(bufferExhaustions)
                    + " times: answers waited for a buffer and latencies include that wait; add --threads or use fewer connections per thread")
            }
            return out
        }
    }
}
