import Foundation
import RingStormEngine

extension Bench {
    /// A metric over the rounds of one backend: the median and the spread.
    public struct Spread: Sendable, Equatable {
        public var median: Double
        public var min: Double
        public var max: Double

        /// nil for no values.
        public init?(_ values: [Double]) {
            guard !values.isEmpty else { return nil }
            let sorted = values.sorted()
            let mid = sorted.count / 2
            median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
            min = sorted.first!
            max = sorted.last!
        }
    }

    /// The machine a bench ran on.
    public struct Machine: Sendable, Codable, Equatable {
        public var kernel: String
        public var cpuModel: String
        public var cores: Int
        /// One-minute load average when the bench started: how busy the machine was anyway.
        public var loadAverage: Double

        public init(kernel: String, cpuModel: String, cores: Int, loadAverage: Double) {
            self.kernel = kernel
            self.cpuModel = cpuModel
            self.cores = cores
            self.loadAverage = loadAverage
        }

        /// This machine, from uname, /proc/cpuinfo and /proc/loadavg.
        public static func current() -> Machine {
            var name = utsname()
            uname(&name)
            let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let cpuinfo = ProcFile.text("/proc/cpuinfo") ?? ""
            let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
                .flatMap { $0.split(separator: ":", maxSplits: 1).last }
                .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
            let load = (ProcFile.text("/proc/loadavg") ?? "").split(separator: " ").first.flatMap { Double($0) } ?? 0
            return Machine(kernel: "Linux " + release, cpuModel: model, cores: sysconf(Int32(_SC_NPROCESSORS_ONLN)), loadAverage: load)
        }

        enum CodingKeys: String, CodingKey {
            case kernel, cores
            case cpuModel = "cpu_model"
            case loadAverage = "load_average_1m"
        }
    }

    /// Every run of a bench and what they add up to: the table and the JSON.
    public struct Result: Sendable, Codable {
        public var configuration: Configuration
        public var machine: Machine
        public var placement: CPUPlacement
        public var runs: [Run]

        public init(configuration: Configuration, machine: Machine, placement: CPUPlacement, runs: [Run]) {
            self.configuration = configuration
            self.machine = machine
            self.placement = placement
            self.runs = runs
        }

        /// The backends in the order they ran.
        public var backends: [Backend] { configuration.backends.filter { b in runs.contains { $0.backend == b } } }

        /// Each metric's spread over rounds, per backend.
        public func spread(_ metric: Metric, _ backend: Backend) -> Spread? {
            Spread(runs.filter { $0.backend == backend }.compactMap { $0.figures[metric] })
        }

        /// io_uring's median over epoll's; nil when either is missing or epoll's is 0.
        public func ratio(_ metric: Metric) -> Double? {
            guard let u = spread(metric, .uring)?.median, let e = spread(metric, .epoll)?.median, e > 0 else { return nil }
            return u / e
        }

        /// A backend's request latencies over all its rounds, merged exactly.
        public func latency(_ backend: Backend) -> LatencyRecorder {
            runs.filter { $0.backend == backend }.reduce(into: LatencyRecorder()) { $0.merge($1.latency) }
        }

        /// The metrics that have a value (server rows are absent with `--target`).
        public var metrics: [Metric] { Metric.allCases.filter { m in backends.contains { spread(m, $0) != nil } } }

        // MARK: JSON

        enum CodingKeys: String, CodingKey {
            case configuration, machine, placement, runs, summary
        }

        struct Row: Codable {
            var median: [String: Double]
            var min: [String: Double]
            var max: [String: Double]
            var ratio: Double?
            enum CodingKeys: String, CodingKey { case median, min, max, ratio = "uring_over_epoll" }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(ConfigurationJSON(configuration), forKey: .configuration)
            try c.encode(machine, forKey: .machine)
            try c.encode(placement, forKey: .placement)
            try c.encode(runs, forKey: .runs)
            var summary: [String: Row] = [:]
            for metric in metrics {
                var row = Row(median: [:], min: [:], max: [:], ratio: ratio(metric))
                for b in backends {
                    guard let s = spread(metric, b) else { continue }
                    row.median[b.rawValue] = s.median
                    row.min[b.rawValue] = s.min
                    row.max[b.rawValue] = s.max
                }
                summary[metric.rawValue] = row
            }
            try c.encode(summary, forKey: .summary)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            configuration = try c.decode(ConfigurationJSON.self, forKey: .configuration).configuration
            machine = try c.decode(Machine.self, forKey: .machine)
            placement = try c.decode(CPUPlacement.self, forKey: .placement)
            runs = try c.decode([Run].self, forKey: .runs)
        }

        /// The JSON document, keys sorted.
        public func json() throws -> Data { try ReportJSON.encode(self, pretty: true) }
    }

    /// The settings as published in the JSON (snake case, durations in seconds).
    struct ConfigurationJSON: Codable {
        var connections: Int
        var messageSize: Int
        var durationSeconds: Double
        var rounds: Int
        var wireProtocol: LoadGenerator.WireProtocol
        var threads: Int
        var target: String?
        var backends: [Backend]
        var sampleIntervalSeconds: Double

        init(_ c: Configuration) {
            connections = c.connections
            messageSize = c.messageSize
            durationSeconds = Double(c.durationNanoseconds) / 1e9
            rounds = c.rounds
            wireProtocol = c.wireProtocol
            threads = c.threads
            target = c.target?.description
            backends = c.backends
            sampleIntervalSeconds = Double(c.sampleIntervalNanoseconds) / 1e9
        }

        var configuration: Configuration {
            var c = Configuration()
            c.connections = connections
            c.messageSize = messageSize
            c.durationNanoseconds = Int64(durationSeconds * 1e9)
            c.rounds = rounds
            c.wireProtocol = wireProtocol
            c.threads = threads
            c.target = try? target.map { try SocketAddress(parsing: $0) }
            c.backends = backends
            c.sampleIntervalNanoseconds = Int64(sampleIntervalSeconds * 1e9)
            return c
        }

        enum CodingKeys: String, CodingKey {
            case connections, rounds, threads, target, backends
            case messageSize = "message_size"
            case durationSeconds = "duration_s"
            case wireProtocol = "protocol"
            case sampleIntervalSeconds = "sample_interval_s"
        }
    }
}
