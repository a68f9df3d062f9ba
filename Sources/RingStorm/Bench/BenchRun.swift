import RingStormEngine

extension Bench {
    /// One side of one run (the server or the load generator): what its process spent.
    public struct Side: Sendable, Codable, Equatable {
        /// CPU seconds (all threads, user + system) from the side being ready to its end.
        public var cpuSeconds: Double
        /// System calls its engines made (their own counters).
        public var syscalls: Int
        /// Anonymous resident memory when ready (engines set up) and the most seen while running, bytes.
        public var baselineBytes: Int
        public var peakBytes: Int

        public init(cpuSeconds: Double, syscalls: Int, baselineBytes: Int, peakBytes: Int) {
            self.cpuSeconds = cpuSeconds
            self.syscalls = syscalls
            self.baselineBytes = baselineBytes
            self.peakBytes = peakBytes
        }

        enum CodingKeys: String, CodingKey {
            case cpuSeconds = "cpu_s"
            case syscalls
            case baselineBytes = "rss_anon_ready_bytes"
            case peakBytes = "rss_anon_peak_bytes"
        }
    }

    /// One point of a run's time series, sampled as the sides report.
    public struct Sample: Sendable, Codable, Equatable {
        /// Seconds since the load started.
        public var seconds: Double
        /// Requests answered so far, and the sides' syscalls so far.
        public var answered: Int
        public var loadSyscalls: Int
        public var serverSyscalls: Int?

        public init(seconds: Double, answered: Int, loadSyscalls: Int, serverSyscalls: Int?) {
            self.seconds = seconds
            self.answered = answered
            self.loadSyscalls = loadSyscalls
            self.serverSyscalls = serverSyscalls
        }

        enum CodingKeys: String, CodingKey {
            case seconds = "t_s"
            case answered
            case loadSyscalls = "load_syscalls"
            case serverSyscalls = "server_syscalls"
        }
    }

    /// One backend's run in one round.
    public struct Run: Sendable, Codable, Equatable {
        public var backend: Backend
        public var round: Int
        public var connections: Int
        /// Connections the load established.
        public var established: Int
        /// Wall seconds of the load (connects, requests and the drain at the end).
        public var seconds: Double
        public var answered: Int
        /// Request latency (µs), the whole histogram.
        public var latency: LatencyRecorder
        public var load: Side
        /// nil with `--target` (the server is not ours).
        public var server: Side?
        public var samples: [Sample]
        /// Failures the load counted, `phase: outcome` → count.
        public var failures: [String: Int]

        public init(backend: Backend, round: Int, connections: Int, established: Int, seconds: Double, answered: Int,
                    latency: LatencyRecorder, load: Side, server: Side?, samples: [Sample], failures: [String: Int]) {
            self.backend = backend
            self.round = round
            self.connections = connections
            self.established = established
            self.seconds = seconds
            self.answered = answered
            self.latency = latency
            self.load = load
            self.server = server
            self.samples = samples
            self.failures = failures
        }

        public var requestsPerSecond: Double { seconds > 0 ? Double(answered) / seconds : 0 }

        /// The figures the table compares, by metric.
        public var figures: [Metric: Double] {
            var f: [Metric: Double] = [.requestsPerSecond: requestsPerSecond]
            let answered = Double(max(self.answered, 1))
            f[.loadCPU] = load.cpuSeconds * 1e6 / answered
            f[.loadSyscalls] = Double(load.syscalls) / answered
            f[.loadMemory] = Double(max(0, load.peakBytes - load.baselineBytes)) / Double(max(established, 1))
            if let server {
                f[.serverCPU] = server.cpuSeconds * 1e6 / answered
                f[.serverSyscalls] = Double(server.syscalls) / answered
                f[.serverMemory] = Double(max(0, server.peakBytes - server.baselineBytes)) / Double(max(established, 1))
            }
            if !latency.isEmpty {
                f[.p50] = Double(latency.value(atPercentile: 50))
                f[.p99] = Double(latency.value(atPercentile: 99))
                f[.p999] = Double(latency.value(atPercentile: 99.9))
            }
            return f
        }

        enum CodingKeys: String, CodingKey {
            case backend, round, connections, established, seconds, answered, load, server, samples, failures
            case latency = "latency_us"
        }

        private enum FigureKey: String, CodingKey { case figures }

        /// Everything, plus the run's own figures (the table's metrics for this run), for machines that
        /// want each round rather than the summary's median and spread. Decoding ignores them.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(backend, forKey: .backend)
            try c.encode(round, forKey: .round)
            try c.encode(connections, forKey: .connections)
            try c.encode(established, forKey: .established)
            try c.encode(seconds, forKey: .seconds)
            try c.encode(answered, forKey: .answered)
            try c.encode(latency, forKey: .latency)
            try c.encode(load, forKey: .load)
            try c.encodeIfPresent(server, forKey: .server)
            try c.encode(samples, forKey: .samples)
            try c.encode(failures, forKey: .failures)
            var f = encoder.container(keyedBy: FigureKey.self)
            try f.encode(Dictionary(uniqueKeysWithValues: figures.map { ($0.key.rawValue, $0.value) }), forKey: .figures)
        }
    }

    /// What the bench table compares, in its row order.
    public enum Metric: String, Sendable, Codable, CaseIterable, CodingKeyRepresentable {
        case requestsPerSecond = "requests_per_s"
        case serverCPU = "server_cpu_us_per_request"
        case loadCPU = "load_cpu_us_per_request"
        case serverSyscalls = "server_syscalls_per_request"
        case loadSyscalls = "load_syscalls_per_request"
        case p50 = "latency_p50_us"
        case p99 = "latency_p99_us"
        case p999 = "latency_p99_9_us"
        case serverMemory = "server_bytes_per_connection"
        case loadMemory = "load_bytes_per_connection"

        /// The row's label in the table.
        public var label: String {
            switch self {
            case .requestsPerSecond: return "requests/s"
            case .serverCPU: return "server CPU µs/request"
            case .loadCPU: return "load CPU µs/request"
            case .serverSyscalls: return "server syscalls/request"
            case .loadSyscalls: return "load syscalls/request"
            case .p50: return "latency p50 µs"
            case .p99: return "latency p99 µs"
            case .p999: return "latency p99.9 µs"
            case .serverMemory: return "server memory/connection"
            case .loadMemory: return "load memory/connection"
            }
        }

        /// Whether more is better (requests/s) or less (everything else).
        public var higherIsBetter: Bool { self == .requestsPerSecond }
    }
}
