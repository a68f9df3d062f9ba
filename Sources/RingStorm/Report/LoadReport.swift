import Foundation
import RingStormEngine

/// System calls spent, in total and per answered request.
public struct SyscallSummary: Codable, Sendable, Equatable {
    public var total: Int
    /// `total / requests answered`, 0 when none was answered; rounded to 3 decimals.
    public var perRequest: Double

    public init(total: Int, requests: Int) {
        self.total = total
        perRequest = requests == 0 ? 0 : ((Double(total) / Double(requests)) * 1000).rounded() / 1000
    }

    public init(total: Int, perRequest: Double) {
        self.total = total
        self.perRequest = perRequest
    }

    enum CodingKeys: String, CodingKey {
        case total
        case perRequest = "per_request"
    }
}

/// What a load run did: the JSON document `ringstorm load --json` writes (schema in `Docs/report.md`).
///
/// A report holds percentiles, which cannot be merged; worker processes send `LoadWorkerReport`s, which
/// carry the histograms, and the parent merges those and makes one `LoadReport`.
public struct LoadReport: Codable, Sendable, Equatable {
    public struct Connections: Codable, Sendable, Equatable {
        /// Connects started.
        public var attempted: Int
        /// Connects that succeeded.
        public var established: Int
        /// Most connections open at once (over workers: see `LoadWorkerReport.merge`).
        public var peakOpen: Int

        public init(attempted: Int = 0, established: Int = 0, peakOpen: Int = 0) {
            self.attempted = attempted
            self.established = established
            self.peakOpen = peakOpen
        }

        enum CodingKeys: String, CodingKey {
            case attempted, established
            case peakOpen = "peak_open"
        }

        /// Counts summed, peaks too: `LoadWorkerReport.merge` then takes the peak from the aligned time
        /// series when the reports carry one.
        public mutating func merge(_ other: Connections) {
            attempted += other.attempted
            established += other.established
            peakOpen += other.peakOpen
        }
    }

    public struct Requests: Codable, Sendable, Equatable {
        /// Requests (or echo messages) sent: handed to the engine for a connection whose unsent bytes
        /// were below the generator's send bound (`Configuration.maxUnsentBytesPerConnection`), so each
        /// one is either in the kernel or in a send queue of bounded size on its way there. A request
        /// the bound held back is not sent (see `heldBack`).
        public var sent: Int
        /// Requests answered by a matching response (or echo messages fully echoed).
        public var answered: Int
        /// Requests the generator did not produce because the connection's unsent bytes had reached the
        /// send bound (a server that does not read): the generator was held back, nothing was sent.
        public var heldBack: Int
        /// The most unsent bytes one connection had (queued in the engine, not yet taken by the kernel)
        /// just after a request was added: at most the send bound plus one request. A merge keeps the
        /// largest.
        public var peakUnsentBytes: Int

        public init(sent: Int = 0, answered: Int = 0, heldBack: Int = 0, peakUnsentBytes: Int = 0) {
            self.sent = sent
            self.answered = answered
            self.heldBack = heldBack
            self.peakUnsentBytes = peakUnsentBytes
        }

        enum CodingKeys: String, CodingKey {
            case sent, answered
            case heldBack = "held_back"
            case peakUnsentBytes = "peak_unsent_bytes"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            sent = try c.decode(Int.self, forKey: .sent)
            answered = try c.decode(Int.self, forKey: .answered)
            heldBack = try c.decodeIfPresent(Int.self, forKey: .heldBack) ?? 0
            peakUnsentBytes = try c.decodeIfPresent(Int.self, forKey: .peakUnsentBytes) ?? 0
        }

        public mutating func merge(_ other: Requests) {
            sent += other.sent
            answered += other.answered
            heldBack += other.heldBack
            peakUnsentBytes = max(peakUnsentBytes, other.peakUnsentBytes)
        }
    }

    public struct Latencies: Codable, Sendable, Equatable {
        /// connect started → connected.
        public var connect: LatencySummary
        /// REGISTER sent → REGISTERED received.
        public var register: LatencySummary
        /// REQUEST sent → RESPONSE received (echo: message sent → last byte of its echo received). Open
        /// loop: from the *intended* send time, so the generator's own lateness counts (coordinated
        /// omission corrected); this is `sendLag` and `response` together.
        public var request: LatencySummary
        /// Open loop only (empty otherwise): intended send time → the moment the request was handed to
        /// the engine (epoll writes it then; io_uring submits it with that loop's `io_uring_enter`): the
        /// generator's own lateness.
        public var sendLag: LatencySummary
        /// Open loop only: actual send → response, the server's and the network's part.
        public var response: LatencySummary

        public init(connect: LatencySummary = .init(), register: LatencySummary = .init(), request: LatencySummary = .init(),
                    sendLag: LatencySummary = .init(), response: LatencySummary = .init()) {
            self.connect = connect
            self.register = register
            self.request = request
            self.sendLag = sendLag
            self.response = response
        }

        enum CodingKeys: String, CodingKey {
            case connect, register, request, response
            case sendLag = "send_lag"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            connect = try c.decode(LatencySummary.self, forKey: .connect)
            register = try c.decode(LatencySummary.self, forKey: .register)
            request = try c.decode(LatencySummary.self, forKey: .request)
            // Reports written before these fields existed have none.
            sendLag = try c.decodeIfPresent(LatencySummary.self, forKey: .sendLag) ?? .init()
            response = try c.decodeIfPresent(LatencySummary.self, forKey: .response) ?? .init()
        }
    }

    public var backend: String
    public var durationSeconds: Double
    public var connections: Connections
    public var requests: Requests
    public var outcomes: PhaseOutcomes
    /// In microseconds.
    public var latency: Latencies
    public var syscalls: SyscallSummary
    /// What the kernel's system-wide network counters did during the run (see `KernelCounters`).
    public var kernel: KernelCounters?
    /// ERROR frames the server sent, by code name (`register_timeout`, `frame_too_large`, ...): the
    /// server's own reason behind `protocol_error` outcomes. Absent when there were none.
    public var serverErrors: [String: Int]?
    /// Whether every worker process reported to the end (always true for one process). False when one
    /// died: the counts then include what it reported before (`failedWorkers`), not its whole run.
    public var complete = true
    /// The worker processes that failed, and how (empty when complete).
    public var failedWorkers: [FailedWorker] = []
    /// How late the generator's own loop ran (see `Generator`).
    public var generator = Generator()
    /// User memory per connection (see `MemoryUse`); absent where /proc was unreadable.
    public var memory: MemoryUse?
    /// `--protocol http`: final responses by status class (a non-2xx is an answer, not a success).
    /// Absent for other protocols.
    public var http: HTTPStatusCounts?
    /// Requests/s over the whole run (answered / `durationSeconds`, the connect ramp and the drain
    /// included); 0 when the run took no time.
    public var requestsPerSecond: Double { durationSeconds > 0 ? Double(requests.answered) / durationSeconds : 0 }
    /// Requests answered from the moment all connections were open to the deadline (see `SteadyWindow`).
    public var steady: SteadyWindow?
    /// What the protocol errors' bytes looked like (for the mismatch hint; not in the JSON).
    public var peerSignals = PeerSignals()
    /// The connections log could not be written (a full disk, an I/O error): the first errno and the
    /// lines lost. Absent when every line was written (or there was no log).
    public var connectionsLogFailure: ConnectionsLogFailure?
    /// The per-interval time series (`--report-interval`), aligned to wall-clock multiples of the interval.
    public var intervals: [LoadInterval] = []
    /// The interval of `intervals`, milliseconds (absent in reports written before the series existed).
    public var intervalMs: Int64?
    /// Who made this report: version, host, shard, start, kernel, configuration. Absent in a merged report,
    /// which lists its inputs' under `mergedFrom`.
    public var provenance: Provenance?
    /// A merged report: the provenance of each report merged, in the order given.
    public var mergedFrom: [Provenance]?

    /// Why lines of the connections log were lost.
    public struct ConnectionsLogFailure: Codable, Sendable, Hashable {
        /// The first failed write's errno in words, e.g. `ENOSPC (No space left on device)`.
        public var error: String
        /// Lines not written (over all workers).
        public var linesLost: Int

        public init(error: String, linesLost: Int) {
            self.error = error
            self.linesLost = linesLost
        }

        enum CodingKeys: String, CodingKey {
            case error
            case linesLost = "lines_lost"
        }

        /// The first error kept, the lines summed.
        static func merged(_ a: Self?, _ b: Self?) -> Self? {
            guard var sum = a else { return b }
            sum.linesLost += b?.linesLost ?? 0
            return sum
        }
    }

    public init(backend: String, durationSeconds: Double, connections: Connections = .init(), requests: Requests = .init(),
                outcomes: PhaseOutcomes = .init(), latency: Latencies = .init(), syscalls: SyscallSummary = .init(total: 0, perRequest: 0)) {
        self.backend = backend
        self.durationSeconds = durationSeconds
        self.connections = connections
        self.requests = requests
        self.outcomes = outcomes
        self.latency = latency
        self.syscalls = syscalls
    }

    enum CodingKeys: String, CodingKey {
        case backend
        case durationSeconds = "duration_s"
        case connections, requests, outcomes
        case latency = "latency_us"
        case syscalls
        case kernel
        case serverErrors = "server_errors"
        case complete
        case failedWorkers = "failed_workers"
        case generator
        case http
        case connectionsLogFailure = "connections_log_failure"
        case intervals
        case intervalMs = "interval_ms"
        case provenance
        case mergedFrom = "merged_from"
        case memory
        case requestsPerSecond = "requests_per_s"
        case steady
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        backend = try c.decode(String.self, forKey: .backend)
        durationSeconds = try c.decode(Double.self, forKey: .durationSeconds)
        connections = try c.decode(Connections.self, forKey: .connections)
        requests = try c.decode(Requests.self, forKey: .requests)
        outcomes = try c.decode(PhaseOutcomes.self, forKey: .outcomes)
        latency = try c.decode(Latencies.self, forKey: .latency)
        syscalls = try c.decode(SyscallSummary.self, forKey: .syscalls)
        kernel = try c.decodeIfPresent(KernelCounters.self, forKey: .kernel)
        serverErrors = try c.decodeIfPresent([String: Int].self, forKey: .serverErrors)
        // Reports written before these fields existed read as complete.
        complete = try c.decodeIfPresent(Bool.self, forKey: .complete) ?? true
        failedWorkers = try c.decodeIfPresent([FailedWorker].self, forKey: .failedWorkers) ?? []
        generator = try c.decodeIfPresent(Generator.self, forKey: .generator) ?? Generator()
        http = try c.decodeIfPresent(HTTPStatusCounts.self, forKey: .http)
        connectionsLogFailure = try c.decodeIfPresent(ConnectionsLogFailure.self, forKey: .connectionsLogFailure)
        intervals = try c.decodeIfPresent([LoadInterval].self, forKey: .intervals) ?? []
        intervalMs = try c.decodeIfPresent(Int64.self, forKey: .intervalMs)
        provenance = try c.decodeIfPresent(Provenance.self, forKey: .provenance)
        mergedFrom = try c.decodeIfPresent([Provenance].self, forKey: .mergedFrom)
        memory = try c.decodeIfPresent(MemoryUse.self, forKey: .memory)
        steady = try c.decodeIfPresent(SteadyWindow.self, forKey: .steady)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(backend, forKey: .backend)
        try c.encode(durationSeconds, forKey: .durationSeconds)
        try c.encode(connections, forKey: .connections)
        try c.encode(requests, forKey: .requests)
        try c.encode(outcomes, forKey: .outcomes)
        try c.encode(latency, forKey: .latency)
        try c.encode(syscalls, forKey: .syscalls)
        try c.encodeIfPresent(kernel, forKey: .kernel)
        try c.encodeIfPresent(serverErrors, forKey: .serverErrors)
        try c.encode(complete, forKey: .complete)
        try c.encode(failedWorkers, forKey: .failedWorkers)
        try c.encode(generator, forKey: .generator)
        try c.encodeIfPresent(http, forKey: .http)
        try c.encodeIfPresent(connectionsLogFailure, forKey: .connectionsLogFailure)
        try c.encode(intervals, forKey: .intervals)
        try c.encodeIfPresent(intervalMs, forKey: .intervalMs)
        try c.encodeIfPresent(provenance, forKey: .provenance)
        try c.encodeIfPresent(mergedFrom, forKey: .mergedFrom)
        try c.encodeIfPresent(memory, forKey: .memory)
        // Derived, written for readers of the JSON (not read back: it follows from the two above).
        try c.encode((requestsPerSecond * 10).rounded() / 10, forKey: .requestsPerSecond)
        try c.encodeIfPresent(steady, forKey: .steady)
    }

    /// The JSON document, keys sorted.
    public func json(pretty: Bool = true) throws -> Data { try ReportJSON.encode(self, pretty: pretty) }

    public init(json: Data) throws { self = try JSONDecoder().decode(Self.self, from: json) }
}

/// One load worker's counts and raw latency histograms: what it records while running, what a worker
/// process sends its parent, and what their merge is. It has `LoadReport`'s sections (`connections`,
/// `requests`, `outcomes`, ...) but keeps the latency histograms instead of percentiles, so reports merge
/// exactly (counts summed, histograms added) and the parent's report is the one a single process would
/// have produced; `report` renders the published `LoadReport`.
///
/// Its JSON is a transport between RingStorm processes of the same version, not a published schema.
public struct LoadWorkerReport: Codable, Sendable, Equatable {
    /// The three latency histograms, in microseconds.
    public struct Histograms: Codable, Sendable, Equatable {
        public var connect = LatencyRecorder()
        public var register = LatencyRecorder()
        public var request = LatencyRecorder()
        /// Open loop: intended → actual send, and actual send → response (see `LoadReport.Latencies`).
        public var sendLag = LatencyRecorder()
        public var response = LatencyRecorder()

        public init() {}

        enum CodingKeys: String, CodingKey {
            case connect, register, request, response
            case sendLag = "send_lag"
        }

        public mutating func merge(_ other: Histograms) {
            connect.merge(other.connect)
            register.merge(other.register)
            request.merge(other.request)
            sendLag.merge(other.sendLag)
            response.merge(other.response)
        }

        public var summaries: LoadReport.Latencies {
            .init(connect: connect.publishedSummary, register: register.publishedSummary, request: request.publishedSummary,
                  sendLag: sendLag.publishedSummary, response: response.publishedSummary)
        }
    }

    public var backend: String
    /// Wall time of the run. Workers run side by side, so a merge keeps the longest.
    public var durationSeconds: Double
    /// `peakOpen` is this worker's; a merge takes the most open at one instant of the aligned time series
    /// (or one report's own peak, if larger), and sums the peaks only of reports without a series.
    public var connections = LoadReport.Connections()
    public var requests = LoadReport.Requests()
    public var outcomes = PhaseOutcomes()
    public var latency = Histograms()
    /// System calls made (the engine's `statistics.syscalls.total`).
    public var syscalls = 0
    /// ERROR frames received from the server, by code name.
    public var serverErrors: [String: Int] = [:]
    /// HTTP responses by status class.
    public var http = HTTPStatusCounts()
    /// Reports merged into this one (1 for a worker's own).
    public var workers = 1
    /// How late the worker loops ran.
    public var generator = LoadReport.Generator()
    /// Lines of the connections log lost to failed writes.
    public var connectionsLogFailure: LoadReport.ConnectionsLogFailure?
    /// The per-interval series, aligned by wall-clock start (`LoadSeries`), and its interval in ms.
    public var intervals: [LoadInterval] = []
    public var intervalMs: Int64?
    /// When the run started (wall clock, Unix ms; a merge keeps the earliest) and, with `--start-at`,
    /// how late past it (ms; a merge keeps the latest start).
    public var startedAtMs: Int64?
    public var startLateByMs: Double?
    /// The kernel features the workers' engines used (`EngineStatistics.features`), for the provenance;
    /// a merge keeps each once, in order.
    public var backendFeatures: [String] = []
    /// The process's user memory per connection (set per process, not per thread: see `MemorySampler`).
    public var memory: MemoryUse?
    /// The steady window (`SteadyWindow`); nil until all this worker's connections were open at once.
    public var steady: SteadyWindow?
    /// Protocol errors whose bytes began with an HTTP status line (`HTTP/`) on a client that does not
    /// speak HTTP, or with our own request line on one that does (an echo): what names the server's
    /// protocol in the mismatch hint (`LoadRunFailure.noResponseParsed`).
    public var peerSignals = PeerSignals()

    public init(backend: String, durationSeconds: Double = 0) {
        self.backend = backend
        self.durationSeconds = durationSeconds
    }

    public init(backend: Backend, durationSeconds: Double = 0) {
        self.init(backend: backend.rawValue, durationSeconds: durationSeconds)
    }

    /// Adds `other` into this report: counts summed, histograms added, the longest duration kept. Workers
    /// of different backends give backend "mixed".
    public mutating func merge(_ other: LoadWorkerReport) {
        if backend != other.backend { backend = "mixed" }
        durationSeconds = max(durationSeconds, other.durationSeconds)
        let peaks = max(connections.peakOpen, other.connections.peakOpen)
        let hasSeries = !intervals.isEmpty || !other.intervals.isEmpty
        connections.merge(other.connections)
        if hasSeries {
            // With time series, the peak is the most open at one instant of the aligned series (each
            // worker's own peak is a floor too): a sum of peaks would count workers that peaked apart.
            intervals = LoadSeries.merged(intervals, other.intervals)
            connections.peakOpen = max(peaks, LoadSeries.peakOpen(intervals))
        }
        intervalMs = intervalMs ?? other.intervalMs
        if let a = startedAtMs, let b = other.startedAtMs { startedAtMs = min(a, b) } else { startedAtMs = startedAtMs ?? other.startedAtMs }
        if let a = startLateByMs, let b = other.startLateByMs { startLateByMs = max(a, b) } else { startLateByMs = startLateByMs ?? other.startLateByMs }
        for feature in other.backendFeatures where !backendFeatures.contains(feature) { backendFeatures.append(feature) }
        requests.merge(other.requests)
        outcomes.merge(other.outcomes)
        latency.merge(other.latency)
        syscalls += other.syscalls
        for (code, n) in other.serverErrors { serverErrors[code, default: 0] += n }
        http.merge(other.http)
        workers += other.workers
        generator.merge(other.generator)
        connectionsLogFailure = .merged(connectionsLogFailure, other.connectionsLogFailure)
        memory = .merged(memory, other.memory)
        steady = .merged(steady, other.steady)
        peerSignals.httpStatusLines += other.peerSignals.httpStatusLines
        peerSignals.echoedRequests += other.peerSignals.echoedRequests
    }

    public static func + (a: LoadWorkerReport, b: LoadWorkerReport) -> LoadWorkerReport {
        var sum = a
        sum.merge(b)
        return sum
    }

    /// All reports merged; nil for none.
    public static func merged(_ reports: [LoadWorkerReport]) -> LoadWorkerReport? {
        guard var sum = reports.first else { return nil }
        for report in reports.dropFirst() { sum.merge(report) }
        return sum
    }

    /// The published report: percentiles from the histograms.
    public var report: LoadReport {
        var report = LoadReport(backend: backend, durationSeconds: durationSeconds, connections: connections, requests: requests,
                                outcomes: outcomes, latency: latency.summaries,
                                syscalls: SyscallSummary(total: syscalls, requests: requests.answered))
        report.serverErrors = serverErrors.isEmpty ? nil : serverErrors
        report.generator = generator
        report.http = http.total > 0 ? http : nil
        report.connectionsLogFailure = connectionsLogFailure
        report.intervals = intervals
        report.intervalMs = intervalMs
        report.memory = memory
        report.steady = steady
        report.peerSignals = peerSignals
        return report
    }

    enum CodingKeys: String, CodingKey {
        case backend
        case durationSeconds = "duration_s"
        case connections, requests, outcomes
        case latency = "latency_us"
        case syscalls, workers
        case serverErrors = "server_errors"
        case generator
        case http
        case connectionsLogFailure = "connections_log_failure"
        case memory
        case steady
        case peerSignals = "peer_signals"
        case intervals
        case intervalMs = "interval_ms"
        case startedAtMs = "started_at_ms"
        case startLateByMs = "start_late_by_ms"
        case backendFeatures = "backend_features"
    }

    /// Compact JSON on one line (no newline inside), for a pipe from worker to parent.
    public func json() throws -> Data { try ReportJSON.encode(self, pretty: false) }

    public init(json: Data) throws { self = try JSONDecoder().decode(Self.self, from: json) }
}

enum ReportJSON {
    /// Keys sorted, so the same report always gives the same bytes (Foundation's encoder does not keep
    /// the declaration order of keys).
    static func encode(_ value: some Encodable, pretty: Bool) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}
