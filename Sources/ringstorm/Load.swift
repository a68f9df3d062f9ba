import Foundation
import ArgumentParser
import Glibc
import RingStorm
import RingStormEngine

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open many connections to a server, send requests, and report every connection's fate by phase and outcome.",
        discussion: """
        Exit status: 0 the run went as asked; 1 a --threshold was crossed, no connection was established, \
        no response parsed (a protocol mismatch) or the report could not be written; 2 bad input, refused \
        before any connection starts. The report goes to standard output (to standard error with --json -), \
        the banner and live lines to standard error. See Docs/load.md.

        Examples:
          ringstorm load --target 127.0.0.1:7200 -c 1000 -d 10s
          ringstorm load -c 500 --interval 1s --reconnect -d 30s --json load.json
          ringstorm load -d 5s --threshold reset==0 --threshold 'p99<50ms'
          ringstorm load --protocol echo -c 100 -d 5s --json - | jq .requests
        """
    )

    @Option(help: "Server to connect to, HOST:PORT.")
    var target: String = "127.0.0.1:7200"

    @Option(name: [.customShort("c"), .long], parsing: .unconditional, help: "Clients, each holding at most one connection.")
    var connections: Int = 100

    @Option(parsing: .unconditional, help: "Connections started per second, reconnects included (0: all at once).")
    var connectRate: Double = 0

    @Option(name: [.customShort("d"), .long], parsing: .unconditional, help: "How long to run, e.g. 10s, 2m.")
    var duration: String = "10s"

    @Option(help: "Wire protocol: ringstorm (REGISTER, then REQUEST/RESPONSE) or echo (raw bytes).")
    var `protocol`: LoadGenerator.WireProtocol = .ringstorm

    @Option(parsing: .unconditional, help: "Echo only: bytes sent first and awaited back before requests (the echo 'registration'), e.g. 75.")
    var firstMessage: String = "0"

    @Option(parsing: .unconditional, help: "Open loop: each connection sends one request every INTERVAL, e.g. 1s, 500ms.")
    var interval: String?

    @Flag(help: "Closed loop: the next request when a response arrives (the default without --interval).")
    var closedLoop = false

    @Option(parsing: .unconditional, help: "Closed loop: requests in flight per connection (default 1).")
    var pipeline: Int?

    @Option(parsing: .unconditional, help: "Request payload (ringstorm) or message (echo) size, e.g. 64, 4k.")
    var messageSize: String = "64"

    @Option(parsing: .unconditional, help: "Give up on a connect after this long (connect_timeout).")
    var connectTimeout: String = "5s"

    @Option(parsing: .unconditional, help: "A request or registration unanswered this long ends the connection (response_timeout).")
    var requestTimeout: String = "5s"

    @Flag(help: "Reconnect after a failure, backing off exponentially.")
    var reconnect = false

    @Option(name: .customLong("backoff"), help: "Reconnect backoff: first and longest wait, and optionally a jitter (each wait spread up to that fraction longer), e.g. 100ms,5s or 100ms,5s,0.5 (default 100ms,5s).")
    var userBackoff: String?
    private var backoff: String { userBackoff ?? "100ms,5s" }

    @Option(help: "Local addresses to connect from: ADDR[,ADDR...] or a range 127.0.0.2-127.0.0.50.")
    var source: String?

    @Option(help: "Write one JSON line per connection lifecycle to FILE (- for standard output).")
    var connectionsLog: String?

    @Option(name: .customLong("threshold"), help: ArgumentHelp(
        "Fail the run (exit status 1) unless METRIC OP VALUE holds, e.g. reset==0, 'answered>=99.9%', p99<50ms, connect.refused==0, established==connections; repeatable. See Docs/load.md.",
        valueName: "expr"))
    var thresholds: [String] = []

    @Flag(help: "Connect and send nothing, like telnet: no registration, no requests; count what the server does (FIN: closed, RST: reset) in phase idle.")
    var silent = false

    @Option(parsing: .unconditional, help: "ringstorm: bytes of the REGISTER frame, padded with registration data the server ignores, e.g. 75 (default 13: the bare frame).")
    var registrationSize: String = "13"

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics while the run goes on (port 0: the kernel picks one; see Docs/metrics.md).", valueName: "host:port"))
    var metrics: String?

    @OptionGroup var options: EngineOptions

    func makeConfiguration() throws -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: try AddressArgument.parse(target, option: "--target"))
        c.connections = connections
        c.connectRate = connectRate
        c.durationNanoseconds = try nanoseconds(duration, "--duration")
        c.wireProtocol = `protocol`
        c.firstMessageSize = try bytes(firstMessage, "--first-message")
        if silent {
            guard interval == nil && !closedLoop else { throw UsageError("--silent clients send nothing; drop --interval/--closed-loop") }
            c.pacing = .silent
        } else if let interval {
            guard !closedLoop else { throw UsageError("--interval (open loop) and --closed-loop exclude each other; pick one") }
            if let pipeline {
                throw UsageError("--pipeline \(pipeline) is for the closed loop; with --interval each connection sends one request every interval. Drop one of them")
            }
            c.pacing = .openLoop(intervalNanoseconds: try nanoseconds(interval, "--interval"))
        } else {
            c.pacing = .closedLoop(pipeline: pipeline ?? 1)
        }
        c.messageSize = try bytes(messageSize, "--message-size")
        c.connectTimeoutNanoseconds = try nanoseconds(connectTimeout, "--connect-timeout")
        c.requestTimeoutNanoseconds = try nanoseconds(requestTimeout, "--request-timeout")
        c.reconnect = reconnect
        let parts = backoff.split(separator: ",").map(String.init)
        guard parts.count == 2 || parts.count == 3 else {
            throw UsageError("--backoff '\(backoff)': write the first and longest wait, e.g. 100ms,5s, and optionally a jitter, 100ms,5s,0.5")
        }
        c.reconnectMinimumNanoseconds = try nanoseconds(parts[0], "--backoff")
        c.reconnectMaximumNanoseconds = try nanoseconds(parts[1], "--backoff")
        guard c.reconnectMaximumNanoseconds >= c.reconnectMinimumNanoseconds else {
            throw UsageError("--backoff '\(backoff)': the longest wait \(parts[1]) is shorter than the first \(parts[0]); write the first wait first, e.g. \(parts[1]),\(parts[0])")
        }
        if userBackoff != nil && !reconnect {
            throw UsageError("--backoff is the wait between reconnects; add --reconnect or drop --backoff")
        }
        if parts.count == 3 {
            guard let jitter = Double(parts[2]), jitter >= 0, jitter <= 10 else {
                throw UsageError("--backoff '\(backoff)': the jitter '\(parts[2])' must be a fraction from 0 to 10, e.g. 0.5")
            }
            c.reconnectJitter = jitter
        }
        if let source {
            do { c.sources = try SourceAddresses.parse(source) } catch { throw UsageError(error.commandLineText) }
        }
        c.backend = options.backend
        c.threads = options.threads
        c.connectionsLogPath = connectionsLog
        if connectionsLog == "-" && options.processes > 1 {
            throw UsageError("--connections-log - (standard output) works with one process; with --processes name a file, which the workers share")
        }
        if connectionsLog == "-" && options.json == "-" {
            throw UsageError("--connections-log - and --json - both write to standard output; send one of them to a file")
        }
        c.registrationSize = try bytes(registrationSize, "--registration-size")
        return c
    }

    func run() throws {
        TerminationSignals.block()
        Diagnostics.setLevel(options.logLevel)
        if let worker = try inheritedWorker(LoadGenerator.Configuration.self) {
            return try work(worker.assignment, channel: worker.channel)
        }
        guard (1...LoadBudget.maximumProcesses).contains(options.processes) else {
            throw UsageError("--processes must be between 1 and \(LoadBudget.maximumProcesses), not \(options.processes)")
        }
        let configuration = try makeConfiguration()
        let progressEvery = try nanoseconds(options.reportInterval, "--report-interval")
        let thresholds = try parsedThresholds()
        // Every output is checked before the first connection: a bad path fails now, not after the run.
        let json = try options.json.map { try OutputFile(option: "--json", path: $0) }
        if options.processes > 1 {
            return try runProcesses(configuration, progressEvery: progressEvery, json: json, thresholds: thresholds)
        }
        let generator = LoadGenerator(configuration: configuration)
        let endpoint = try metrics.map { text in
            try MetricsEndpoint(text) { endpoint in
                let snapshot = generator.snapshot
                endpoint.load(snapshot.report, open: snapshot.open, configured: configuration.connections)
            }
        }
        defer { endpoint?.stop() }
        _ = try start(generator)
        Diagnostics.notice(banner(configuration) + (endpoint.map { "  " + $0.bannerText + "\n" } ?? ""))
        let started = monotonicNanoseconds()
        var last = LoadProgress()
        var lastTime = started
        let tick = progressEvery > 0 ? min(progressEvery, 1_000_000_000) : 200_000_000
        var nextLine = started + progressEvery
        while !generator.isFinished {
            if TerminationSignals.wait(nanoseconds: min(tick, 200_000_000)) != nil {
                generator.stop()
                break
            }
            let now = monotonicNanoseconds()
            guard progressEvery > 0, now >= nextLine else { continue }
            nextLine += progressEvery
            let current = generator.progress
            Diagnostics.info(String(format: "[%6.1fs] ", Double(now - started) / 1e9)
                + current.line(since: last, seconds: Double(now - lastTime) / 1e9) + "\n")
            last = current
            lastTime = now
        }
        let report = generator.wait()
        try finish(report, text: report.text + "\n", configuration: configuration, json: json, thresholds: thresholds)
    }

    func parsedThresholds() throws -> [Threshold] {
        try thresholds.map { text in
            do { return try Threshold(parsing: text) } catch { throw UsageError("--threshold \(error)") }
        }
    }

    /// Prints the report (to standard error when the JSON goes to standard output), writes the JSON,
    /// and throws the run's failures: the JSON not written, thresholds crossed, nothing established.
    private func finish(_ report: LoadReport, text: String, configuration: LoadGenerator.Configuration, json: OutputFile?,
                        thresholds: [Threshold], failures: [String] = []) throws {
        // Standard output carrying machine output (the JSON, the connection log) takes nothing else.
        if json?.isStandardOutput == true || connectionsLog == "-" {
            FileHandleOutput.standardError(text)
        } else {
            FileHandleOutput.standardOutput(text)
        }
        var lines = failures
        if let json {
            do { try json.write(try report.json()) } catch { lines.append("\(error)") }
        }
        let verdict = LoadVerdict(report: report, configuration: configuration, thresholds: thresholds)
        for result in verdict.results where result.passed {
            Diagnostics.info("threshold \(result.threshold.expression) ok: was \(result.actual)\n")
        }
        lines += verdict.lines
        if !lines.isEmpty { throw RunFailure(lines) }
    }

    private func start(_ generator: LoadGenerator) throws -> LoadGenerator {
        do {
            try generator.start()
        } catch let error as LoadError {
            throw UsageError(error.commandLineText)
        } catch let error as EngineError {
            throw UsageError(error.commandLineDescription)
        }
        return generator
    }

    private func banner(_ c: LoadGenerator.Configuration) -> String {
        "ringstorm load: \(c.connections) connection\(c.connections == 1 ? "" : "s") to \(c.target), "
            + "\(c.wireProtocol)\(c.pacing == .silent ? " (silent)" : ""), backend \(c.backend), "
            + (options.processes > 1 ? "\(options.processes) processes × " : "")
            + "\(c.threads) thread\(c.threads == 1 ? "" : "s"), "
            + "for \(DurationParsing.format(nanoseconds: c.durationNanoseconds)); Ctrl-C to stop early\n"
    }

    // MARK: --processes N

    /// A worker process: runs its share (the assignment its parent serialized), sends progress and its
    /// mergeable report to the parent.
    private func work(_ assignment: WorkerAssignment<LoadGenerator.Configuration>, channel: WorkerChannel) throws {
        let generator = try start(LoadGenerator(configuration: assignment.configuration))
        channel.ready()
        // At least once a second: a failed write tells it the parent is gone.
        let every = assignment.progressIntervalNanoseconds > 0 ? min(assignment.progressIntervalNanoseconds, 1_000_000_000) : 1_000_000_000
        while !generator.isFinished {
            if TerminationSignals.wait(nanoseconds: every) != nil {
                generator.stop()
                break
            }
            if !channel.progress(generator.snapshot) {
                generator.stop()  // the parent is gone
                break
            }
        }
        let report = generator.waitMergeable()
        channel.final(LoadWorkerSnapshot(report: report, open: 0, finished: true))
    }

    /// The parent of `--processes N`: checks the budget for N processes, starts N workers (this binary's
    /// `load`, each with its share as a serialized `WorkerAssignment`: see `WorkSplit`), prints a
    /// live line summed over them, forwards SIGINT/SIGTERM, merges their reports exactly (counts summed,
    /// histograms added) and reports a worker that died.
    private func runProcesses(_ configuration: LoadGenerator.Configuration, progressEvery: Int64, json: OutputFile?,
                              thresholds: [Threshold]) throws {
        let kernelAtStart = KernelCounters.read()
        do {
            try LoadGenerator(configuration: configuration).validate(processes: options.processes)
        } catch {
            throw UsageError(error.commandLineText)
        }
        if let connectionsLog, connectionsLog != "-" {
            // Truncated once here; the workers append.
            let fd = open(connectionsLog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw UsageError("--connections-log \(connectionsLog): cannot open: \(Errno.current); name a writable file") }
            close(fd)
        }
        let assignments = WorkSplit(configuration, parts: options.processes).shares.map { share in
            var part = configuration.narrowed(to: share)
            part.truncateConnectionsLog = false
            return WorkerAssignment(part, progressIntervalNanoseconds: progressEvery)
        }
        // The workers' latest snapshots, merged about once a second for --metrics.
        let merged = Locked<(report: LoadWorkerReport, open: Int)>((LoadWorkerReport(backend: configuration.backend), 0))
        let endpoint = try metrics.map { text in
            try MetricsEndpoint(text) { endpoint in
                let (report, open) = merged.withLock { $0 }
                endpoint.load(report, open: open, configured: configuration.connections)
            }
        }
        defer { endpoint?.stop() }
        var nextMerge = monotonicNanoseconds()
        let workers: WorkerProcesses<LoadWorkerSnapshot> = try startedWorkers("load", assignments)
        Diagnostics.notice(banner(configuration) + (endpoint.map { "  " + $0.bannerText + "\n" } ?? ""))

        let started = monotonicNanoseconds()
        // The workers end by themselves; past this, they are stopped.
        let giveUp = started + configuration.durationNanoseconds + configuration.drainNanoseconds + 15_000_000_000
        var last = LoadProgress()
        var lastTime = started
        var nextLine = started + progressEvery
        var failure: WorkerFailure?
        var stopping = false
        while !workers.allEnded {
            if let f = workers.failure, failure == nil {
                failure = f
                workers.signalAll(SIGTERM)
            }
            if !stopping && TerminationSignals.wait(nanoseconds: 0) != nil {
                stopping = true
                workers.signalAll(SIGTERM)
            }
            if monotonicNanoseconds() > giveUp {
                workers.stop(graceNanoseconds: 5_000_000_000)
                break
            }
            workers.pump(timeoutNanoseconds: 100_000_000)
            let now = monotonicNanoseconds()
            if endpoint != nil, now >= nextMerge {
                nextMerge = now + 1_000_000_000
                let latest = workers.latest.compactMap { $0 }
                if let report = LoadWorkerReport.merged(latest.map(\.report)) {
                    merged.withLock { $0 = (report, latest.reduce(0) { $0 + $1.open }) }
                }
            }
            guard progressEvery > 0, now >= nextLine else { continue }
            nextLine = now + progressEvery
            let current = LoadProgress(workers.latest.compactMap { $0 })
            Diagnostics.info(String(format: "[%6.1fs] ", Double(now - started) / 1e9)
                + current.line(since: last, seconds: Double(now - lastTime) / 1e9) + "\n")
            last = current
            lastTime = now
        }
        failure = failure ?? workers.failure
        // A worker that died counts with its last progress report: what it did up to then is not lost.
        let reports = workers.mergeable
        guard let merged = LoadWorkerReport.merged(reports.map(\.report)) else {
            throw RunFailure(failure?.description ?? "no worker process sent a report")
        }
        var report = merged.report
        report.kernel = KernelCounters.read() - kernelAtStart
        report.failedWorkers = workers.failedWorkers
        report.complete = report.failedWorkers.isEmpty && failure == nil
        var text = report.text + "\n"
        text += "processes    \(options.processes), merged exactly (counts summed, histograms added)\n"
        if !report.complete {
            text += "incomplete   \(workers.finals.count) of \(options.processes) final worker reports\n"
            for failed in report.failedWorkers { text += "failed       \(failed.text)\n" }
        }
        try finish(report, text: text, configuration: configuration, json: json, thresholds: thresholds,
                   failures: failure.map { [$0.description] } ?? [])
    }

}

extension LoadGenerator.WireProtocol: ExpressibleByArgument {}

extension LoadError {
    /// The problem in `ringstorm load`'s terms: its option names, the numbers and the fix.
    var commandLineText: String {
        func count(_ value: Int) -> String { ReportFormat.count(value) }
        switch self {
        case .connections(let n): return "--connections must be at least 1, not \(n)"
        case .threads(let n, let maximum): return "--threads must be between 1 and \(maximum), not \(n)"
        case .processes(let n, let maximum): return "--processes must be between 1 and \(maximum), not \(n)"
        case .processesExceedConnections(let p, let c): return "--processes \(p) is more than --connections \(c); use at most \(c)"
        case .firstClientNegative: return "the first client number cannot be negative"
        case .targetWithoutPort(let target): return "--target \(target) has no port; write e.g. 127.0.0.1:7200"
        case .durationNotPositive: return "--duration must be more than 0"
        case .connectRateNegative: return "--connect-rate cannot be negative"
        case .requestTimeoutNotPositive: return "--request-timeout must be more than 0"
        case .reconnectJitter(let j, let maximum):
            return "--backoff jitter must be between 0 and \(Int(maximum)) (a fraction of the wait), not \(j)"
        case .firstMessageNegative: return "--first-message cannot be negative"
        case .intervalNotPositive: return "--interval must be more than 0"
        case .pipeline(let n, let maximum): return "--pipeline must be between 1 and \(maximum), not \(n)"
        case .sourceFamily(let source, let target):
            return "--source \(source.host) and --target \(target) are of different address families"
        case .messageSizeTooSmall(let n, let minimum, let p):
            return p == .echo ? "--message-size must be at least \(minimum) byte for the echo protocol"
                : "--message-size must be at least \(minimum) bytes for the \(p) protocol, not \(n)"
        case .messageSizeTooLarge(let n, let frame, let most):
            return "--message-size \(n) does not fit a \(frame)-byte frame; the most is \(most)"
        case .firstMessageNotFor:
            return "--first-message is for --protocol echo; ringstorm clients send REGISTER first (pad it with --registration-size)"
        case .registrationSize(let n, let minimum, let maximum):
            return "--registration-size \(n) must be between \(minimum) (a bare REGISTER) and \(maximum) bytes"
        case .registrationSizeNotFor:
            return "--registration-size is for --protocol ringstorm; echo clients send --first-message BYTES"
        case .descriptors(let s):
            let limits = "(RLIMIT_NOFILE \(count(s.limit)) minus \(s.margin) kept back)"
            if s.processes == 1 {
                return "--connections \(count(s.connections)) needs \(count(s.connections)) descriptors but one process may open "
                    + "\(count(s.usable)) \(limits): add --processes \(s.processesNeeded) or lower --connections to \(count(s.usable))"
            }
            return "--connections \(count(s.connections)) over --processes \(s.processes) needs \(count(s.perProcess)) descriptors per process "
                + "but one process may open \(count(s.usable)) \(limits): raise --processes to \(s.processesNeeded) "
                + "or lower --connections to \(count(s.usable * s.processes))"
        case .ports(let s):
            let example = s.suggestedRange.map {
                "--source \(SocketAddress(ipv4Value: $0.lowerBound, port: 0).host)-\(SocketAddress(ipv4Value: $0.upperBound, port: 0).host)"
            } ?? "--source with \(s.sourcesNeeded) local addresses"
            return "--connections \(count(s.connections)) from \(s.sources) source address\(s.sources == 1 ? "" : "es") needs \(count(s.perSource)) "
                + "local ports per source but one source address has \(count(s.portsPerSource)) ports per destination: "
                + "add \(example) (\(s.sourcesNeeded) addresses) or lower --connections to \(count(s.portsPerSource * s.sources))"
        case .sources(let text, let problem):
            switch problem {
            case .rangeNotIPv4: return "--source '\(text)': ranges are IPv4 only; list IPv6 addresses with commas"
            case .rangeBackwards: return "--source '\(text)': the range runs backwards; write the lower address first"
            case .tooMany(let maximum): return "--source '\(text)': more than \(maximum) addresses"
            case .empty: return "--source '\(text)' names no address; write e.g. 127.0.0.2,127.0.0.3 or 127.0.0.2-127.0.0.50"
            case .unparsable(let reason): return "--source: \(reason); write e.g. 127.0.0.2,127.0.0.3 or 127.0.0.2-127.0.0.50"
            }
        case .connectionsLog(let path, let errno): return "--connections-log \(path): cannot open: \(errno); name a writable file"
        }
    }
}
