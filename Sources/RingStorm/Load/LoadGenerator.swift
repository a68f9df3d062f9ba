import Glibc
import RingStormEngine

/// Opens many client connections to one target, keeps them busy with requests, and records every
/// connection's fate by phase and outcome (see `Docs/load.md`).
///
/// ```swift
/// var configuration = LoadGenerator.Configuration(target: try SocketAddress(parsing: "127.0.0.1:7200"))
/// configuration.connections = 1000
/// configuration.durationNanoseconds = 5_000_000_000
/// let report = try await LoadGenerator(configuration: configuration).run()
/// ```
///
/// Each of `threads` engines runs on a thread of its own; `run()` is `async` only at the edge (it waits
/// for those threads without blocking the caller's executor). `runBlocking()` is the same, synchronous.
public final class LoadGenerator: Sendable {
    public let configuration: Configuration
    private let workers = Locked<WorkerThreads<LoadWorkerSnapshot>?>(nil)
    private let stopFlag = StopFlag()
    /// The kernel's network counters when the run started, for the report's `kernel` delta.
    private let kernelAtStart = Locked(KernelCounters())
    /// The process's resident set before the engines are made, and at the most connections open.
    private let memory = MemorySampler()

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Checks the values and this process's budget (descriptors, ports per source address); throws the
    /// first problem, with its numbers.
    /// `processes`: worker processes sharing the clients (`--processes`); the budget is per process.
    public func validate(budget: LoadBudget = .current, processes: Int = 1) throws(LoadError) {
        let c = configuration
        guard c.connections >= 1 else { throw .connections(c.connections) }
        guard (1...64).contains(c.threads) else { throw .threads(c.threads, maximum: 64) }
        guard (1...LoadBudget.maximumProcesses).contains(processes) else {
            throw .processes(processes, maximum: LoadBudget.maximumProcesses)
        }
        guard processes <= c.connections else { throw .processesExceedConnections(processes: processes, connections: c.connections) }
        guard c.firstClient >= 0 else { throw .firstClientNegative(c.firstClient) }
        guard c.target.port != 0 else { throw .targetWithoutPort(c.target) }
        guard c.durationNanoseconds > 0 else { throw .durationNotPositive(c.durationNanoseconds) }
        guard c.connectRate >= 0 else { throw .connectRateNegative(c.connectRate) }
        guard c.requestTimeoutNanoseconds > 0 else { throw .requestTimeoutNotPositive(c.requestTimeoutNanoseconds) }
        guard c.reconnectJitter >= 0 && c.reconnectJitter <= 10 else { throw .reconnectJitter(c.reconnectJitter, maximum: 10) }
        if c.wireProtocol != .raw && c.raw.isSet { throw .rawOptionsNotFor(c.wireProtocol) }
        if c.wireProtocol != .http && c.http.isSet { throw .httpOptionsNotFor(c.wireProtocol) }
        try c.wireProtocol.client.validate(c)
        guard c.firstMessageSize >= 0 else { throw .firstMessageNegative(c.firstMessageSize) }
        switch c.pacing {
        case .openLoop(let interval): guard interval > 0 else { throw .intervalNotPositive(interval) }
        case .rate(let perSecond, _): guard perSecond > 0 && perSecond.isFinite else { throw .rateNotPositive(perSecond) }
        case .closedLoop(let pipeline): guard (1...1024).contains(pipeline) else { throw .pipeline(pipeline, maximum: 1024) }
        case .silent: break
        }
        for source in c.sources where source.isIPv6 != c.target.isIPv6 {
            throw .sourceFamily(source: source, target: c.target)
        }
        try budget.check(c, processes: processes)
    }

    /// Starts the worker threads and returns once every engine is set up; `wait()` collects the result.
    public func start() throws {
        try validate()
        kernelAtStart.withLock { $0 = KernelCounters.read() }
        let configuration = configuration
        let logFile = try configuration.connectionsLogPath.map { path throws(LoadError) in
            try ConnectionLogFile(path: path, truncate: configuration.truncateConnectionsLog)
        }
        // Each thread runs its share of the clients and of the connect rate (rates are totals).
        let split = WorkSplit(configuration, parts: configuration.threads)
        let started = try WorkerThreads<LoadWorkerSnapshot>(count: split.parts, stop: stopFlag) { index in
            let plan = LoadWorkerPlan(configuration: configuration.narrowed(to: split.share(index: index)), logFile: logFile)
            return try plan.makeWorker()
        }
        workers.withLock { $0 = started }
    }

    /// Ends the run early (from any thread): workers close their connections as at the deadline.
    public func stop() { stopFlag.stop() }

    /// The run so far, summed over the workers (as last published, about once a second).
    public var progress: LoadProgress {
        guard let current = workers.withLock({ $0 }) else { return LoadProgress() }
        let p = LoadProgress(current.snapshots.compactMap { $0 })
        memory.sample(open: p.open)
        return p
    }

    /// The run so far as one mergeable snapshot (the threads' reports merged exactly, histograms
    /// included), without the time series: what `--metrics` reads.
    package var snapshot: LoadWorkerSnapshot { snapshot(intervalsSinceMs: .max) }

    /// The run so far, with the intervals that start at `intervalsSinceMs` or later: what a worker
    /// process of `load --processes` sends its parent each second (the recent intervals only, so a long
    /// run's messages do not grow, and merging them stays cheap).
    package func snapshot(intervalsSinceMs since: Int64) -> LoadWorkerSnapshot {
        guard let current = workers.withLock({ $0 }) else { return LoadWorkerSnapshot(report: LoadWorkerReport(backend: configuration.backend)) }
        let snapshots = current.snapshots.compactMap { $0 }
        let reports = snapshots.map { s -> LoadWorkerReport in
            var r = s.report
            r.intervals.removeAll { $0.startMs < since }
            return r
        }
        var report = LoadWorkerReport.merged(reports) ?? LoadWorkerReport(backend: configuration.backend)
        let open = snapshots.reduce(0) { $0 + $1.open }
        memory.sample(open: open)
        report.memory = memory.use
        return LoadWorkerSnapshot(report: report, open: open,
                                  finished: !snapshots.isEmpty && snapshots.allSatisfy(\.finished))
    }

    /// The intervals after `startMs` every worker has closed, merged: what the live view prints next.
    package func completedIntervals(after startMs: Int64) -> [LoadInterval] {
        guard let current = workers.withLock({ $0 }) else { return [] }
        return LoadSeries.completed(current.snapshots.map { $0.map { ($0.report.intervals, $0.finished) } }, after: startMs)
    }

    /// Whether every worker has finished.
    package var isFinished: Bool {
        guard let current = workers.withLock({ $0 }) else { return false }
        let snapshots = current.snapshots
        return snapshots.allSatisfy { $0?.finished == true }
    }

    /// Waits for the workers to finish and merges their reports exactly (counts summed, histograms added).
    public func waitMergeable() -> LoadWorkerReport {
        guard let current = workers.withLock({ $0 }) else { return LoadWorkerReport(backend: configuration.backend) }
        let finals = current.join().map(\.report)
        var report = LoadWorkerReport.merged(finals) ?? LoadWorkerReport(backend: configuration.backend)
        report.memory = memory.use
        return report
    }

    /// Waits for the workers to finish; the merged report.
    public func wait() -> LoadReport { waitWithHistograms().report }

    /// Waits for the workers to finish; the merged report and the histograms it was made from (for the
    /// whole distribution: `--latency`, `--hgrm`).
    public func waitWithHistograms() -> (report: LoadReport, histograms: LoadWorkerReport.Histograms) {
        let merged = waitMergeable()
        var report = merged.report
        report.provenance = configuration.provenance(of: merged)
        report.kernel = KernelCounters.read() - kernelAtStart.withLock { $0 }
        return (report, merged.latency)
    }

    /// Runs to the end of the duration on the calling thread.
    public func runBlocking() throws -> LoadReport {
        try start()
        return wait()
    }

    /// Runs to the end of the duration; the engines run on their own threads, and this waits for them
    /// without blocking the caller's executor. Cancelling the task stops the run as `stop()` does and
    /// returns the partial report (what happened until then).
    public func run() async throws -> LoadReport {
        try start()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                do {
                    try spawnDetachedThread(name: "ringstorm-load-wait") { [self] in
                        continuation.resume(returning: self.wait())
                    }
                } catch {
                    continuation.resume(returning: self.wait())
                }
            }
        } onCancel: {
            stop()
        }
    }
}
