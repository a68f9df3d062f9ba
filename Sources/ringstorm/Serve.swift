import Foundation
import ArgumentParser
import Glibc
import RingStorm
import RingStormEngine

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a server on the engine until SIGINT/SIGTERM or --duration, then print a report.",
        discussion: """
        --protocol ringstorm (default) speaks the length-prefixed ringstorm protocol: REGISTER within \
        --register-timeout, REQUESTs answered, idle connections closed, bad frames answered with ERROR. \
        --protocol echo sends back every byte received. Both protocols share the rest: --idle-timeout, \
        --max-fds (lowers the descriptor limit to reproduce descriptor exhaustion), --on-emfile (what \
        happens then) and one report. See Docs/server.md.

        The banner and live lines go to standard error, the report to standard output (to standard error \
        with --json -). Exit status: 0 stopped by --duration or SIGINT/SIGTERM with its report written; \
        1 a worker process failed or the report could not be written; 2 bad input.

        Examples:
          ringstorm serve --listen 127.0.0.1:7200
          ringstorm serve --listen 127.0.0.1:7300 --protocol echo -t 2 -d 30s
          ringstorm serve --max-fds 64 --on-emfile shed -d 10s --json server.json
          ringstorm serve --metrics 127.0.0.1:9200
        """
    )

    @Option(help: "Wire protocol: ringstorm (frames; see Docs/protocol.md), echo (raw bytes echoed back) or http (every request answered 200, keep-alive; see Docs/protocols.md).")
    var `protocol`: ServerProtocolKind = .ringstorm

    @Option(help: "Address to listen on, HOST:PORT ([V6]:PORT for IPv6).")
    var listen: String = "127.0.0.1:7200"

    @Option(parsing: .unconditional, help: "Close a connection that has not sent REGISTER within this (ringstorm; 0: never).")
    var registerTimeout: String = "5s"

    @Option(parsing: .unconditional, help: "Close a connection that has sent nothing for this long (ringstorm: once registered; 0: never).")
    var idleTimeout: String = "60s"

    @Flag(help: "With --processes: start a new worker in place of one that dies (at most 3 per process over the run).")
    var respawn = false

    @Option(parsing: .unconditional, help: "An orderly close whose queued answers cannot drain within this (a client that does not read) is reset instead, counted as drain_timeouts (0: wait forever).")
    var closeTimeout: String = "10s"

    @Option(parsing: .unconditional, help: "Largest frame accepted, e.g. 64KiB (ringstorm); larger gets ERROR frame_too_large. http: the largest request line and headers; larger gets 431.")
    var maxFrameSize: String = "64KiB"

    @Option(parsing: .unconditional, help: "http: body bytes of every 200 answer, e.g. 0, 1k.")
    var responseSize: String?

    @Option(parsing: .unconditional, help: "Lower the process's descriptor limit (soft RLIMIT_NOFILE) to N before starting.")
    var maxFds: Int?

    @Option(help: "Out of descriptors: pause (stop accepting until one frees), shed (accept and close at once), spin (retry at once).")
    var onEmfile: EMFILEPolicy = .pause

    @Option(name: [.customShort("d"), .long], parsing: .unconditional, help: "Stop after this long, e.g. 30s (default: until SIGINT/SIGTERM).")
    var duration: String?

    @Option(parsing: .unconditional, help: "The listen(2) backlog: connections the kernel completes and queues before accept (capped by net.core.somaxconn).")
    var backlog: Int = 4096

    @Option(parsing: .unconditional, help: "io_uring: wait up to this long for a batch of completions per io_uring_enter, e.g. 50us (0: return at the first; needs kernel 6.12).")
    var batchWait: String = "50us"

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics while the server runs (port 0: the kernel picks one; see Docs/metrics.md).", valueName: "host:port"))
    var metrics: String?

    @OptionGroup var engineOptions: EngineOptions
    private var backend: Backend { engineOptions.backend }
    private var threads: Int { engineOptions.threads }
    private var processes: Int { engineOptions.processes }
    private var reportInterval: String { engineOptions.reportInterval }
    private var json: String? { engineOptions.json }

    func validate() throws {
        guard ServerError.threadRange.contains(threads) else { throw ValidationError(Self.text(of: .threadsOutOfRange(threads))) }
        guard (1...LoadBudget.maximumProcesses).contains(processes) else {
            throw ValidationError("--processes must be between 1 and \(LoadBudget.maximumProcesses), not \(processes)")
        }
        _ = try AddressArgument.parse(listen, option: "--listen")
        guard (1...Int(Int32.max)).contains(backlog) else { throw ValidationError("--backlog must be at least 1, not \(backlog)") }
        if let maxFds, maxFds < 1 { throw ValidationError("--max-fds must be at least 1, not \(maxFds)") }
        if let duration = try parsedDurations().duration, duration <= 0 {
            throw ValidationError("--duration must be more than 0, not \(self.duration ?? ""); leave it out to run until SIGINT/SIGTERM")
        }
        _ = try parsedFrameSize()
        _ = try parsedBatchWait()
        _ = try parsedCloseTimeout()
    }

    /// Respawns over a run, so a worker that dies at once is not restarted without end.
    static func maximumRespawns(_ processes: Int) -> Int { 3 * processes }

    private func parsedCloseTimeout() throws -> Int64 {
        let ns = try nanoseconds(closeTimeout, "--close-timeout")
        guard ns >= 0 else { throw ValidationError("--close-timeout must be 0 or more, not \(closeTimeout)") }
        return ns
    }

    private func parsedDurations() throws -> (register: Int64, idle: Int64, report: Int64, duration: Int64?) {
        (try nanoseconds(registerTimeout, "--register-timeout"), try nanoseconds(idleTimeout, "--idle-timeout"),
         try nanoseconds(reportInterval, "--report-interval"), try duration.map { try nanoseconds($0, "--duration") })
    }

    private func parsedBatchWait() throws -> UInt32 {
        let ns = try nanoseconds(batchWait, "--batch-wait")
        guard ns >= 0 && ns <= 10_000_000 else { throw ValidationError("--batch-wait must be between 0 and 10ms, not \(batchWait)") }
        return UInt32(ns / 1000)
    }

    private func parsedFrameSize() throws -> Int {
        let size = try bytes(maxFrameSize, "--max-frame-size")
        guard ServerError.maxFrameSizeRange.contains(size) else { throw ValidationError(Self.text(of: .maxFrameSizeOutOfRange(size))) }
        return size
    }

    func run() throws {
        TerminationSignals.block()
        Diagnostics.setLevel(engineOptions.logLevel)
        var times = try parsedDurations()
        let worker = try inheritedWorker(RingStormServer.Configuration.self)
        // Checked before the server starts: a bad path fails now, not after the run.
        let json = worker == nil ? try self.json.map { try OutputFile(option: "--json", path: $0) } : nil
        if processes > 1 && worker == nil { return try runProcesses(times, json: json) }
        let channel = worker?.channel
        var configuration = try serverConfiguration(times)
        if let worker {
            configuration = worker.assignment.configuration
            times.report = worker.assignment.progressIntervalNanoseconds
            times.duration = worker.assignment.durationNanoseconds
        }
        let server: RingStormServer
        do {
            server = try RingStormServer(configuration: configuration)
        } catch {
            throw UsageError(Self.text(of: error))
        }
        let endpoint = channel != nil ? nil : try metrics.map { text in
            try MetricsEndpoint(text) { $0.server(server.progress) }
        }
        defer { endpoint?.stop() }
        if let channel {
            channel.ready(server.address.description)
        } else {
            Diagnostics.notice(banner(address: server.address, times.duration) + (endpoint.map { "; " + $0.bannerText } ?? "") + "\n")
        }

        let started = monotonicNanoseconds()
        let deadline = times.duration.map { started + $0 }
        var last = server.progress
        var lastTime = started
        var tick = times.report > 0 ? max(times.report, 50_000_000) : 1_000_000_000
        // A worker process reports at least once a second: a failed write tells it the parent is gone.
        if channel != nil { tick = min(tick, 1_000_000_000) }
        while true {
            var wait = tick
            if let deadline { wait = min(wait, deadline - monotonicNanoseconds()) }
            if wait <= 0 { break }
            if TerminationSignals.wait(nanoseconds: wait) != nil { break }
            if let deadline, monotonicNanoseconds() >= deadline { break }
            if let channel {
                if !channel.progress(server.progress) { break }
                continue
            }
            guard times.report > 0 else { continue }
            let now = monotonicNanoseconds()
            let current = server.progress
            Diagnostics.info(liveLine(current, last, seconds: Double(now - lastTime) / 1e9,
                                                    elapsed: Double(now - started) / 1e9))
            last = current
            lastTime = now
        }
        server.stop()
        let final = server.waitForSnapshot()
        let report = final.report
        if let channel {
            channel.final(final)
            return
        }
        try finish(report, text: finalText(report, notes: final.engine.notes, engine: final.engine), json: json)
    }

    /// Prints the report (to standard error when the JSON goes to standard output) and writes the JSON;
    /// throws the run's failures (exit status 1).
    private func finish(_ report: ServerReport, text: String, json: OutputFile?, failures: [String] = []) throws {
        let lines = failures + deliverReport(text: text, json: json) { try report.json() }
        if !lines.isEmpty { throw RunFailure(lines) }
    }

    /// The server these options describe (a worker process of `--processes` gets it as its assignment).
    private func serverConfiguration(_ times: (register: Int64, idle: Int64, report: Int64, duration: Int64?)) throws -> RingStormServer.Configuration {
        var configuration = RingStormServer.Configuration(listen: try AddressArgument.parse(listen, option: "--listen"))
        configuration.backend = backend
        configuration.threads = threads
        configuration.protocol = `protocol`
        configuration.registerTimeout = .nanoseconds(times.register)
        configuration.idleTimeout = .nanoseconds(times.idle)
        configuration.maxFrameSize = try parsedFrameSize()
        if let responseSize {
            guard `protocol` == .http else { throw ValidationError("--response-size is for --protocol http (the body of each 200 answer)") }
            configuration.responseSize = try bytes(responseSize, "--response-size")
        }
        configuration.maxFDs = maxFds
        configuration.onEMFILE = onEmfile
        configuration.backlog = Int32(backlog)
        configuration.engine.batchWaitMicroseconds = try parsedBatchWait()
        configuration.engine.closeTimeoutNanoseconds = try parsedCloseTimeout()
        configuration.engine.uringFeatures = try engineOptions.parsedUringFeatures()
        if times.report > 0 { configuration.reportInterval = .nanoseconds(times.report) }
        return configuration
    }

    private func banner(address: SocketAddress, _ duration: Int64?) -> String {
        var banner = "ringstorm serve: \(`protocol`) on \(address), backend \(backend), "
        if processes > 1 { banner += "\(processes) processes × " }
        banner += "\(threads) thread\(threads == 1 ? "" : "s")"
        if let maxFds { banner += ", max fds \(maxFds)" + (processes > 1 ? " each" : "") }
        banner += ", on EMFILE \(onEmfile)"
        banner += duration.map { ", for \(DurationParsing.format(nanoseconds: $0))" } ?? "; Ctrl-C to stop"
        return banner
    }

    /// The server report, then what only the command line adds: failed accepts per second, the engine's
    /// pressure counters (one process: they stay in the workers of `--processes`) and notes.
    private func finalText(_ report: ServerReport, notes: [String], engine e: EngineStatistics? = nil) -> String {
        var text = report.text + "\n"
        let failures = report.acceptErrors.values.reduce(0, +)
        if failures > 0 && report.durationSeconds > 0 {
            text += String(format: "accept fails  %.0f per second (%@)\n", Double(failures) / report.durationSeconds,
                           onEmfile.rawValue)
        }
        if let e, e.completionQueueOverflows + e.bufferExhaustions + e.backpressurePauses + e.slotExhaustions > 0 {
            text += "pressure     CQ overflows \(e.completionQueueOverflows), buffer exhaustions \(e.bufferExhaustions), "
                + "backpressure pauses \(e.backpressurePauses), slots exhausted \(e.slotExhaustions)\n"
        }
        for note in notes { text += "note         \(note)\n" }
        return text
    }


    // MARK: --processes N

    /// The parent of `--processes N`: reserves the port, starts N workers (this binary's `serve`, each
    /// with the server configuration as its `WorkerAssignment`), prints a live line summed over them, forwards SIGINT/SIGTERM, merges their
    /// reports exactly and reports a worker that died.
    private func runProcesses(_ times: (register: Int64, idle: Int64, report: Int64, duration: Int64?), json: OutputFile?) throws {
        let kernelAtStart = KernelCounters.read()
        let startedAtMs = wallClockNanoseconds() / 1_000_000
        let reservation: PortReservation
        do {
            reservation = try PortReservation(try AddressArgument.parse(listen, option: "--listen"))
        } catch let error as ServerError {
            throw UsageError(Self.text(of: error))
        }
        var configuration = try serverConfiguration(times)
        configuration.listen = reservation.address
        configuration.reusePort = true
        let assignment = WorkerAssignment(configuration, progressIntervalNanoseconds: times.report, durationNanoseconds: times.duration)
        let summed = Locked(ServerSnapshot(backend: backend))
        let endpoint = try metrics.map { text in try MetricsEndpoint(text) { $0.server(summed.withLock { $0 }) } }
        defer { endpoint?.stop() }
        let workers: WorkerProcesses<ServerSnapshot> = try startedWorkers("serve", Array(repeating: assignment, count: processes))
        Diagnostics.notice(banner(address: reservation.address, times.duration) + (endpoint.map { "; " + $0.bannerText } ?? "") + "\n")

        let started = monotonicNanoseconds()
        let deadline = times.duration.map { started + $0 }
        var last = ServerSnapshot(backend: backend)
        var lastTime = started
        var nextLine = started + times.report
        var failure: WorkerFailure?
        var failedSoFar = 0
        var respawned = 0
        while true {
            let now = monotonicNanoseconds()
            if let deadline, now >= deadline { break }
            if TerminationSignals.wait(nanoseconds: 0) != nil { break }
            // A worker that dies is reported and the others keep serving: their listeners share the port
            // (SO_REUSEPORT), so the kernel hands new connections to the survivors.
            let failed = workers.failedWorkers
            if failed.count > failedSoFar {
                failure = failure ?? workers.failure
                for f in failed[failedSoFar...] {
                    var line = "ringstorm serve: \(f.text)"
                    let place = f.worker - 1
                    if respawn && respawned < Self.maximumRespawns(processes) && workers.workers[place].process.pid == f.pid
                        && workers.workers[place].status != nil {
                        do {
                            let new = try workers.respawn(place)
                            respawned += 1
                            line += "; respawned as pid \(new.process.pid)"
                        } catch {
                            line += "; cannot respawn it: \(error)"
                        }
                    }
                    let serving = workers.workers.filter { $0.status == nil }.count
                    FileHandleOutput.standardError(line + "; \(serving) of \(processes) workers serving\n")
                }
                failedSoFar = workers.failedWorkers.count
            }
            if workers.allEnded { break }
            workers.pump(timeoutNanoseconds: 100_000_000)
            let at = monotonicNanoseconds()
            let lineDue = times.report > 0 && at >= nextLine
            guard endpoint != nil || lineDue else { continue }
            // One sum of the workers' snapshots serves both the metrics and the live line.
            let current = workers.mergeable.reduce(ServerSnapshot(backend: backend), +)
            if endpoint != nil { summed.withLock { $0 = current } }
            guard lineDue else { continue }
            nextLine = at + times.report
            Diagnostics.info(liveLine(current, last, seconds: Double(at - lastTime) / 1e9,
                                                    elapsed: Double(at - started) / 1e9))
            last = current
            lastTime = at
        }
        workers.stop()
        failure = failure ?? workers.failure
        withExtendedLifetime(reservation) {}
        // A worker that died counts with its last progress report.
        let finals = workers.mergeable
        guard var report = ServerReport.merged(finals.map(\.report)) else {
            throw RunFailure(failure?.description ?? "no worker process sent a report")
        }
        report.kernel = KernelCounters.read() - kernelAtStart
        report.provenance = configuration.provenance(startedAtMs: startedAtMs,
                                                     backendFeatures: finals.reduce(ServerSnapshot(backend: backend), +).engine.features)
        report.failedWorkers = workers.failedWorkers
        report.complete = report.failedWorkers.isEmpty && failure == nil
        var notes: [String] = []
        for note in finals.flatMap(\.engine.notes) where !notes.contains(note) { notes.append(note) }
        var text = finalText(report, notes: notes)
        text += "processes    \(processes), merged exactly (counts summed)\n"
        if !report.complete {
            text += "incomplete   \(workers.finals.count) of \(processes) final worker reports\n"
            for failed in report.failedWorkers { text += "failed       \(failed.text)\n" }
        }
        try finish(report, text: text, json: json, failures: failure.map { [$0.description] } ?? [])
    }

    private func liveLine(_ current: ServerSnapshot, _ last: ServerSnapshot, seconds: Double, elapsed: Double) -> String {
        let accepted = Double(current.report.accepted - last.report.accepted) / seconds
        let requests = current.report.requests - last.report.requests
        let syscalls = Double(current.report.syscalls - last.report.syscalls)
        let failures = current.acceptErrorCount
        func n(_ value: Double) -> String { ReportFormat.count(Int(value.rounded())) }
        var line = String(format: "[%6.1fs] ", elapsed) + "open \(ReportFormat.count(current.openConnections))  accepted/s \(n(accepted))  "
            + "requests/s \(n(Double(requests) / seconds))  "
            + String(format: "syscalls/request %.3f", requests > 0 ? syscalls / Double(requests) : 0)
            + "  accept errors \(ReportFormat.count(failures))"
        if failures > last.acceptErrorCount {
            line += " (\(n(Double(failures - last.acceptErrorCount) / seconds))/s"
            line += ", " + current.report.acceptErrors.keys.sorted().map { "\($0) \(ReportFormat.count(current.report.acceptErrors[$0]!))" }.joined(separator: ", ") + ")"
        }
        if current.report.shed > 0 { line += "  shed \(ReportFormat.count(current.report.shed))" }
        if current.pausedListeners > 0 { line += "  accept paused" }
        return line + "\n"
    }
}

extension Serve {
    /// A server error worded with this command's flag names.
    static func text(of error: ServerError) -> String {
        if case .engine(let engineError) = error { return engineError.commandLineDescription }
        return error.text(threads: "--threads", maxFrameSize: "--max-frame-size", maxFDs: "--max-fds",
                   timeout: { "--\($0.rawValue)-timeout" }, tick: "the tick")
    }
}

extension ServerProtocolKind: ExpressibleByArgument {}
extension EMFILEPolicy: ExpressibleByArgument {}
