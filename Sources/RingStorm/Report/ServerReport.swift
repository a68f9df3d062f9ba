import Foundation
import RingStormEngine

/// What a server run did: the JSON document `ringstorm serve --json` writes (schema in `Docs/report.md`).
/// One shape for every protocol, and the one type for a worker's counts and the merged report: server
/// reports hold only counts, so they merge exactly with `+`: each worker thread counts into one, and
/// threads and processes are added up. Counters of one protocol stay 0 under the other (`registered`,
/// `register_timeouts`, `protocol_errors` are the `ringstorm` protocol's; `bytes_echoed` is `echo`'s
/// and absent for `ringstorm`).
public struct ServerReport: Sendable, Equatable {
    public var backend: String
    /// Wall time of the run; a merge keeps the longest.
    public var durationSeconds: Double
    /// Connections accepted.
    public var accepted = 0
    /// Accepts that failed, by errno name (`EMFILE`, `ENFILE`, `ECONNABORTED`, ...).
    public var acceptErrors: [String: Int] = [:]
    /// Connections accepted and closed at once because the server was full (the reserve-descriptor shed).
    public var shed = 0
    /// Most connections open at once (a merge sums the workers' peaks: an upper bound).
    public var peakOpen = 0
    /// Connections that sent a valid REGISTER (`ringstorm`).
    public var registered = 0
    /// Connections closed for not registering in time (sent ERROR `register_timeout`; `ringstorm`).
    public var registerTimeouts = 0
    /// Connections the server closed for being idle too long.
    public var idleClosed = 0
    /// Connections the client closed (FIN).
    public var closedByPeer = 0
    /// Connections the client reset (RST).
    public var resetByPeer = 0
    /// Connections closed for a protocol violation (sent ERROR with the violation's code; `ringstorm`).
    public var protocolErrors = 0
    /// Orderly closes (idle, register timeout, violation, the client's FIN) whose queued answers could
    /// not drain within the close deadline (`--close-timeout`: a client that does not read), so the
    /// connection was reset instead: the engines' `drain_timeout` send outcome.
    public var drainTimeouts = 0
    /// Accepts that failed because the io_uring direct-descriptor table was full (`--uring-features
    /// direct-descriptors`; also counted under `acceptErrors["ENFILE"]`): unlike EMFILE, the kernel had
    /// already taken each of these connections off the accept queue and closed it, so the client saw
    /// RST (its data had arrived) or FIN (it had sent nothing).
    public var directTableFull = 0
    /// What the kernel's system-wide network counters did during the run (set by whoever started it;
    /// absent in a worker's partial report).
    public var kernel: KernelCounters?
    /// Requests answered: RESPONSE frames sent (`ringstorm`), or receives echoed (`echo`).
    public var requests = 0
    /// System calls made (the engines' `statistics.syscalls.total`).
    public var syscalls = 0
    /// Bytes received and sent back (`echo`; nil for `ringstorm`).
    public var bytesEchoed: Int?
    /// Whether every worker process reported to the end (always true for one process). False when one
    /// died: the counts then include what it reported before (`failedWorkers`), not its whole run.
    public var complete = true
    /// The worker processes that failed, and how (empty when complete).
    public var failedWorkers: [FailedWorker] = []
    /// The per-interval series (`--report-interval`, wall-clock aligned; `ServerInterval`) and its interval.
    public var intervals: [ServerInterval] = []
    public var intervalMs: Int64?
    /// Who made the report (absent in a worker's partial report and in a merged one).
    public var provenance: Provenance?
    /// User memory per connection (see `MemoryUse`): set per process, summed over worker processes.
    public var memory: MemoryUse?

    public init(backend: String, durationSeconds: Double = 0) {
        self.backend = backend
        self.durationSeconds = durationSeconds
    }

    public init(backend: Backend, durationSeconds: Double = 0) {
        self.init(backend: backend.rawValue, durationSeconds: durationSeconds)
    }

    /// Counts an accept that failed with `outcome`.
    public mutating func recordAcceptError(_ outcome: Outcome) {
        guard outcome != .success else { return }
        acceptErrors[outcome.errno?.name ?? outcome.name, default: 0] += 1
    }

    /// System calls per request answered (0 with no request), rounded to 3 decimals.
    public var syscallSummary: SyscallSummary { SyscallSummary(total: syscalls, requests: requests) }

    public mutating func merge(_ other: ServerReport) {
        if backend != other.backend { backend = "mixed" }
        durationSeconds = max(durationSeconds, other.durationSeconds)
        let peaks = max(peakOpen, other.peakOpen)
        let hasSeries = !intervals.isEmpty || !other.intervals.isEmpty
        intervalMs = intervalMs ?? other.intervalMs
        // System-wide counters over overlapping windows: summing would count them once per worker.
        if kernel == nil { kernel = other.kernel }
        for (field, _) in Self.counters { self[keyPath: field] += other[keyPath: field] }
        for (name, n) in other.acceptErrors { acceptErrors[name, default: 0] += n }
        syscalls += other.syscalls
        if let bytes = other.bytesEchoed { bytesEchoed = (bytesEchoed ?? 0) + bytes }
        complete = complete && other.complete
        failedWorkers += other.failedWorkers
        if hasSeries {
            // As for load reports: the peak is the most open at one instant of the aligned series.
            intervals = ServerInterval.merged(intervals, other.intervals)
            peakOpen = max(peaks, intervals.map(\.open).max() ?? 0)
        }
        memory = .merged(memory, other.memory)
    }

    public static func + (a: ServerReport, b: ServerReport) -> ServerReport {
        var sum = a
        sum.merge(b)
        return sum
    }

    /// All reports merged; nil for none.
    public static func merged(_ reports: [ServerReport]) -> ServerReport? {
        guard var sum = reports.first else { return nil }
        for report in reports.dropFirst() { sum.merge(report) }
        return sum
    }

    /// The JSON document, keys sorted.
    public func json(pretty: Bool = true) throws -> Data { try ReportJSON.encode(self, pretty: pretty) }

    public init(json: Data) throws { self = try JSONDecoder().decode(Self.self, from: json) }
}

extension ServerReport: Codable {
    enum CodingKeys: String, CodingKey {
        case backend
        case durationSeconds = "duration_s"
        case accepted
        case acceptErrors = "accept_errors"
        case shed
        case peakOpen = "peak_open"
        case registered
        case registerTimeouts = "register_timeouts"
        case idleClosed = "idle_closed"
        case closedByPeer = "closed_by_peer"
        case resetByPeer = "reset_by_peer"
        case protocolErrors = "protocol_errors"
        case drainTimeouts = "drain_timeouts"
        case directTableFull = "direct_table_full"
        case requests
        case syscalls
        case bytesEchoed = "bytes_echoed"
        case kernel
        case complete
        case failedWorkers = "failed_workers"
        case intervals
        case intervalMs = "interval_ms"
        case provenance
        case memory
    }

    /// The plain counts, each with its key: the one list that `merge` sums and the JSON writes and reads.
    static var counters: [(WritableKeyPath<ServerReport, Int>, CodingKeys)] {
        [(\.accepted, .accepted), (\.shed, .shed), (\.peakOpen, .peakOpen), (\.registered, .registered),
         (\.registerTimeouts, .registerTimeouts), (\.idleClosed, .idleClosed), (\.closedByPeer, .closedByPeer),
         (\.resetByPeer, .resetByPeer), (\.protocolErrors, .protocolErrors), (\.requests, .requests),
         (\.drainTimeouts, .drainTimeouts), (\.directTableFull, .directTableFull)]
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(backend, forKey: .backend)
        try c.encode(durationSeconds, forKey: .durationSeconds)
        for (field, key) in Self.counters { try c.encode(self[keyPath: field], forKey: key) }
        var errors = c.nestedContainer(keyedBy: OutcomeCounters.Key.self, forKey: .acceptErrors)
        for name in acceptErrors.keys.sorted() { try errors.encode(acceptErrors[name]!, forKey: .init(name)) }
        try c.encode(syscallSummary, forKey: .syscalls)
        try c.encodeIfPresent(bytesEchoed, forKey: .bytesEchoed)
        try c.encodeIfPresent(kernel, forKey: .kernel)
        try c.encode(complete, forKey: .complete)
        try c.encode(failedWorkers, forKey: .failedWorkers)
        try c.encode(intervals, forKey: .intervals)
        try c.encodeIfPresent(intervalMs, forKey: .intervalMs)
        try c.encodeIfPresent(provenance, forKey: .provenance)
        try c.encodeIfPresent(memory, forKey: .memory)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(backend: try c.decode(String.self, forKey: .backend),
                  durationSeconds: try c.decode(Double.self, forKey: .durationSeconds))
        // Counters added later (`drain_timeouts`, `direct_table_full`) read as 0 from an older report.
        for (field, key) in Self.counters { self[keyPath: field] = try c.decodeIfPresent(Int.self, forKey: key) ?? 0 }
        acceptErrors = try c.decode([String: Int].self, forKey: .acceptErrors)
        syscalls = try c.decode(SyscallSummary.self, forKey: .syscalls).total
        bytesEchoed = try c.decodeIfPresent(Int.self, forKey: .bytesEchoed)
        kernel = try c.decodeIfPresent(KernelCounters.self, forKey: .kernel)
        complete = try c.decodeIfPresent(Bool.self, forKey: .complete) ?? true
        failedWorkers = try c.decodeIfPresent([FailedWorker].self, forKey: .failedWorkers) ?? []
        intervals = try c.decodeIfPresent([ServerInterval].self, forKey: .intervals) ?? []
        intervalMs = try c.decodeIfPresent(Int64.self, forKey: .intervalMs)
        provenance = try c.decodeIfPresent(Provenance.self, forKey: .provenance)
        memory = try c.decodeIfPresent(MemoryUse.self, forKey: .memory)
    }
}
