import Foundation
import ArgumentParser
import Glibc
import RingStorm
import RingStormEngine

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open many connections to a server, send requests, and report every connection's fate by phase and outcome."
    )

    @Option(help: "Server to connect to, HOST:PORT.")
    var target: String = "127.0.0.1:7200"

    @Option(help: "Clients, each holding at most one connection.")
    var connections: Int = 100

    @Option(help: "Connections started per second, reconnects included (0: all at once).")
    var connectRate: Double = 0

    @Option(help: "How long to run, e.g. 10s, 2m.")
    var duration: String = "10s"

    @Option(help: "Wire protocol: ringstorm (REGISTER, then REQUEST/RESPONSE) or echo (raw bytes).")
    var `protocol`: LoadGenerator.WireProtocol = .ringstorm

    @Option(help: "Echo only: bytes sent first and awaited back before requests (the echo 'registration'), e.g. 75.")
    var firstMessage: String = "0"

    @Option(help: "Open loop: each connection sends one request every INTERVAL, e.g. 1s, 500ms.")
    var interval: String?

    @Flag(help: "Closed loop: the next request when a response arrives (the default without --interval).")
    var closedLoop = false

    @Option(help: "Closed loop: requests in flight per connection.")
    var pipeline: Int = 1

    @Option(help: "Request payload (ringstorm) or message (echo) size, e.g. 64, 4k.")
    var messageSize: String = "64"

    @Option(help: "Give up on a connect after this long (connect_timeout).")
    var connectTimeout: String = "5s"

    @Option(help: "A request or registration unanswered this long ends the connection (response_timeout).")
    var requestTimeout: String = "5s"

    @Flag(help: "Reconnect after a failure, backing off exponentially.")
    var reconnect = false

    @Option(help: "Reconnect backoff: first and longest wait, and optionally a jitter (each wait spread up to that fraction longer), e.g. 100ms,5s or 100ms,5s,0.5.")
    var backoff: String = "100ms,5s"

    @Option(help: "Local addresses to connect from: ADDR[,ADDR...] or a range 127.0.0.2-127.0.0.50.")
    var source: String?

    @Option(help: "Engine backend: uring or epoll.")
    var backend: Backend = .uring

    @Option(help: "Engine threads; connections are split among them.")
    var threads: Int = 1

    @Option(help: "Write the report as JSON to FILE.")
    var json: String?

    @Option(help: "Write one JSON line per connection lifecycle to FILE.")
    var connectionsLog: String?

    @Option(help: "Live progress line every INTERVAL (0: none).")
    var reportInterval: String = "1s"

    @Flag(help: "Connect and send nothing, like telnet: no registration, no requests; count what the server does (FIN: closed, RST: reset) in phase idle.")
    var silent = false

    @Option(help: "ringstorm: bytes of the REGISTER frame, padded with registration data the server ignores, e.g. 75 (default 13: the bare frame).")
    var registrationSize: String = "13"

    @Option(help: "Worker processes; connections and --connect-rate are split among them, reports merged exactly (one process holds at most RLIMIT_NOFILE descriptors).")
    var processes: Int = 1

    /// Set in a worker process of `--processes`: report to the parent on this descriptor.
    @Option(help: .hidden)
    var workerReportFd: Int32?

    /// Set in a worker process of `--processes`: the number of its first client among all.
    @Option(help: .hidden)
    var workerFirstClient: Int = 0

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
            c.pacing = .openLoop(intervalNanoseconds: try nanoseconds(interval, "--interval"))
        } else {
            c.pacing = .closedLoop(pipeline: pipeline)
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
        c.reconnectMaximumNanoseconds = max(try nanoseconds(parts[1], "--backoff"), c.reconnectMinimumNanoseconds)
        if parts.count == 3 {
            guard let jitter = Double(parts[2]), jitter >= 0, jitter <= 10 else {
                throw UsageError("--backoff '\(backoff)': the jitter '\(parts[2])' must be a fraction from 0 to 10, e.g. 0.5")
            }
            c.reconnectJitter = jitter
        }
        if let source { c.sources = try SourceAddresses.parse(source) }
        c.backend = backend
        c.threads = threads
        c.connectionsLogPath = connectionsLog
        c.registrationSize = try bytes(registrationSize, "--registration-size")
        if workerReportFd != nil {
            c.firstClient = workerFirstClient
            c.truncateConnectionsLog = false
        }
        return c
    }

    func run() throws {
        TerminationSignals.block()
        guard (1...LoadBudget.maximumProcesses).contains(processes) else {
            throw UsageError("--processes must be between 1 and \(LoadBudget.maximumProcesses), not \(processes)")
        }
        let configuration = try makeConfiguration()
        var progressEvery = try nanoseconds(reportInterval, "--report-interval")
        if processes > 1 && workerReportFd == nil { return try runProcesses(configuration, progressEvery: progressEvery) }
        let channel = workerReportFd.map { WorkerChannel(fd: $0) }
        // A worker process reports at least once a second: a failed write tells it the parent is gone.
        if channel != nil { progressEvery = progressEvery > 0 ? min(progressEvery, 1_000_000_000) : 1_000_000_000 }
        let generator = LoadGenerator(configuration: configuration)
        do {
            try generator.start()
        } catch let error as LoadError {
            throw UsageError(error.description)
        } catch let error as EngineError {
            throw UsageError(error.commandLineDescription)
        }
        if let channel {
            channel.ready()
            return work(generator, channel: channel, every: progressEvery)
        }
        FileHandleOutput.standardError(banner(configuration))
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
            FileHandleOutput.standardError(String(format: "[%6.1fs] ", Double(now - started) / 1e9)
                + current.line(since: last, seconds: Double(now - lastTime) / 1e9) + "\n")
            last = current
            lastTime = now
        }
        let report = generator.wait()
        FileHandleOutput.standardOutput(report.text + "\n")
        try writeJSON(report)
    }

    private func writeJSON(_ report: LoadReport) throws {
        guard let json else { return }
        do {
            try report.json().write(to: URL(fileURLWithPath: json))
        } catch {
            throw UsageError("--json \(json): cannot write: \(error); name a writable file")
        }
    }

    private func banner(_ c: LoadGenerator.Configuration) -> String {
        "ringstorm load: \(c.connections) connection\(c.connections == 1 ? "" : "s") to \(c.target), "
            + "\(c.wireProtocol)\(c.pacing == .silent ? " (silent)" : ""), backend \(c.backend), "
            + (processes > 1 ? "\(processes) processes × " : "")
            + "\(c.threads) thread\(c.threads == 1 ? "" : "s"), "
            + "for \(DurationParsing.format(nanoseconds: c.durationNanoseconds)); Ctrl-C to stop early\n"
    }

    // MARK: --processes N

    /// A worker process: runs its share, sends progress and its mergeable report to the parent.
    private func work(_ generator: LoadGenerator, channel: WorkerChannel, every: Int64) {
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

    /// The parent of `--processes N`: checks the budget for N processes, starts N workers (this binary,
    /// `load ... --worker-report-fd 3`) with their share of the clients and of the connect rate, prints a
    /// live line summed over them, forwards SIGINT/SIGTERM, merges their reports exactly (counts summed,
    /// histograms added) and reports a worker that died.
    private func runProcesses(_ configuration: LoadGenerator.Configuration, progressEvery: Int64) throws {
        let kernelAtStart = KernelCounters.read()
        do {
            try LoadGenerator(configuration: configuration).validate(processes: processes)
        } catch {
            throw UsageError(error.description)
        }
        if let connectionsLog {
            // Truncated once here; the workers append.
            let fd = open(connectionsLog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw UsageError("--connections-log \(connectionsLog): cannot open: \(Errno.current); name a writable file") }
            close(fd)
        }
        let n = configuration.connections
        var arguments: [[String]] = []
        var first = 0
        for index in 0..<processes {
            let share = n / processes + (index < n % processes ? 1 : 0)
            let rate = configuration.connectRate * Double(share) / Double(n)
            arguments.append(workerArguments(connections: share, firstClient: first, connectRate: rate))
            first += share
        }
        let workers: WorkerProcesses<LoadWorkerSnapshot>
        do {
            workers = try WorkerProcesses(arguments: arguments)
        } catch {
            throw UsageError(error.description)
        }
        do {
            _ = try workers.waitUntilReady()
        } catch {
            workers.stop(graceNanoseconds: 2_000_000_000)
            throw UsageError(error.description)
        }
        FileHandleOutput.standardError(banner(configuration))

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
            guard progressEvery > 0, now >= nextLine else { continue }
            nextLine = now + progressEvery
            let current = LoadProgress(workers.latest.compactMap { $0 })
            FileHandleOutput.standardError(String(format: "[%6.1fs] ", Double(now - started) / 1e9)
                + current.line(since: last, seconds: Double(now - lastTime) / 1e9) + "\n")
            last = current
            lastTime = now
        }
        failure = failure ?? workers.failure
        let finals = workers.finals
        guard let merged = LoadWorkerReport.merged(finals.map(\.report)) else {
            throw UsageError(failure?.description ?? "no worker process sent a report")
        }
        var report = merged.report
        report.kernel = KernelCounters.read() - kernelAtStart
        var text = report.text + "\n"
        text += "processes    \(processes), merged exactly (counts summed, histograms added)\n"
        if let failure { text += "incomplete   \(finals.count) of \(processes) worker reports: \(failure)\n" }
        FileHandleOutput.standardOutput(text)
        try writeJSON(report)
        if let failure { throw UsageError(failure.description) }
    }

    /// This command's options for one worker: its share, and the hidden worker options.
    private func workerArguments(connections: Int, firstClient: Int, connectRate: Double) -> [String] {
        var a = ["load", "--target", target, "--connections", String(connections), "--connect-rate", String(connectRate),
                 "--duration", duration, "--protocol", `protocol`.rawValue, "--first-message", firstMessage,
                 "--message-size", messageSize, "--connect-timeout", connectTimeout, "--request-timeout", requestTimeout,
                 "--backoff", backoff, "--backend", backend.rawValue, "--threads", String(threads),
                 "--report-interval", reportInterval, "--registration-size", registrationSize,
                 "--worker-report-fd", String(WorkerProcesses<LoadWorkerSnapshot>.channelDescriptor),
                 "--worker-first-client", String(firstClient)]
        if let interval { a += ["--interval", interval] }
        if closedLoop { a.append("--closed-loop") }
        if interval == nil && !silent { a += ["--pipeline", String(pipeline)] }
        if silent { a.append("--silent") }
        if reconnect { a.append("--reconnect") }
        if let source { a += ["--source", source] }
        if let connectionsLog { a += ["--connections-log", connectionsLog] }
        return a
    }
}

extension LoadGenerator.WireProtocol: ExpressibleByArgument {}
