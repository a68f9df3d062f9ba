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
        --protocol echo sends back every byte received. --max-fds lowers the descriptor limit to reproduce \
        descriptor exhaustion; --on-emfile chooses what happens then. See Docs/server.md.
        """
    )

    @Option(help: "Wire protocol: ringstorm (frames; see Docs/protocol.md) or echo (raw bytes echoed back).")
    var `protocol`: ServerProtocol = .ringstorm

    @Option(help: "Address to listen on, HOST:PORT ([V6]:PORT for IPv6).")
    var listen: String = "127.0.0.1:7200"

    @Option(help: "Engine backend: uring or epoll.")
    var backend: Backend = .uring

    @Option(help: "Engine threads, each with its own ring or epoll instance and SO_REUSEPORT listener.")
    var threads: Int = 1

    @Option(help: "Close a connection that has not sent REGISTER within this (ringstorm; 0: never).")
    var registerTimeout: String = "5s"

    @Option(help: "Close a registered connection that has sent nothing for this long (ringstorm; 0: never).")
    var idleTimeout: String = "60s"

    @Option(help: "Largest frame accepted, e.g. 64KiB (ringstorm); larger gets ERROR frame_too_large.")
    var maxFrameSize: String = "64KiB"

    @Option(help: "Lower the process's descriptor limit (soft RLIMIT_NOFILE) to N before starting.")
    var maxFds: Int?

    @Option(help: "Out of descriptors: pause (stop accepting until one frees), shed (accept and close at once), spin (retry at once). ringstorm only.")
    var onEmfile: EMFILEPolicy = .pause

    @Option(help: "Stop after this long, e.g. 30s (default: until SIGINT/SIGTERM).")
    var duration: String?

    @Option(help: "Time between live progress lines, e.g. 1s (0: none).")
    var reportInterval: String = "1s"

    @Option(help: "Write the final report as JSON to FILE (schema in Docs/report.md).")
    var json: String?

    @Option(help: "io_uring: wait up to this long for a batch of completions per io_uring_enter, e.g. 50us (0: return at the first; needs kernel 6.12).")
    var batchWait: String = "50us"

    @Option(help: "Worker processes, each with its own SO_REUSEPORT listener(s) on the same port; their reports are merged exactly (one process holds at most RLIMIT_NOFILE descriptors).")
    var processes: Int = 1

    /// Set in a worker process of `--processes`: report to the parent on this descriptor instead of the terminal.
    @Option(help: .hidden)
    var workerReportFd: Int32?

    func validate() throws {
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be between 1 and 64, not \(threads)") }
        guard (1...LoadBudget.maximumProcesses).contains(processes) else {
            throw ValidationError("--processes must be between 1 and \(LoadBudget.maximumProcesses), not \(processes)")
        }
        _ = try AddressArgument.parse(listen, option: "--listen")
        _ = try parsedDurations()
        _ = try parsedFrameSize()
        _ = try parsedBatchWait()
        if `protocol` == .echo && onEmfile != .pause {
            throw ValidationError("--on-emfile \(onEmfile) needs --protocol ringstorm (the echo server always pauses)")
        }
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
        let minimum = 1 + WireFormat.requestFixedBodySize
        guard size >= minimum && size <= Int(UInt32.max) else {
            throw ValidationError("--max-frame-size must be between \(minimum) and \(UInt32.max) bytes, not \(size)")
        }
        return size
    }

    func run() throws {
        TerminationSignals.block()
        let times = try parsedDurations()
        if processes > 1 && workerReportFd == nil { return try runProcesses(times) }
        let channel = workerReportFd.map { WorkerChannel(fd: $0) }
        var configuration = RingStormServer.Configuration(listen: try AddressArgument.parse(listen, option: "--listen"))
        configuration.backend = backend
        configuration.threads = threads
        configuration.protocol = `protocol`
        configuration.registerTimeout = .nanoseconds(times.register)
        configuration.idleTimeout = .nanoseconds(times.idle)
        configuration.maxFrameSize = try parsedFrameSize()
        configuration.maxFDs = maxFds
        configuration.onEMFILE = onEmfile
        configuration.engine.batchWaitMicroseconds = try parsedBatchWait()
        configuration.reusePort = channel != nil
        if times.report > 0 { configuration.reportInterval = .nanoseconds(times.report) }
        let server: RingStormServer
        do {
            server = try RingStormServer(configuration: configuration)
        } catch {
            throw UsageError(error.commandLineDescription)
        }
        if let channel {
            channel.ready(server.address.description)
        } else {
            FileHandleOutput.standardOutput(banner(address: server.address, times.duration) + "\n")
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
                if !channel.progress(ServerProcessStatus(server.progress)) { break }
                continue
            }
            guard times.report > 0 else { continue }
            let now = monotonicNanoseconds()
            let current = server.progress
            FileHandleOutput.standardError(liveLine(current, last, seconds: Double(now - lastTime) / 1e9,
                                                    elapsed: Double(now - started) / 1e9))
            last = current
            lastTime = now
        }
        server.stop()
        let final = server.waitForSnapshot()
        let report = final.report
        if let channel {
            channel.final(ServerProcessStatus(final))
            return
        }
        if `protocol` == .echo {
            var echo = EchoSnapshot(backend: backend)
            echo.engine = final.engine
            echo.accepted = report.accepted
            echo.messages = report.requests
            echo.openConnections = final.openConnections
            FileHandleOutput.standardOutput(EchoSummary.render(echo, seconds: report.durationSeconds))
        } else {
            FileHandleOutput.standardOutput(finalText(report, notes: final.engine.notes))
        }
        try writeJSON(report)
    }

    private func banner(address: SocketAddress, _ duration: Int64?) -> String {
        var banner = "ringstorm serve: \(`protocol`) on \(address), backend \(backend), "
        if processes > 1 { banner += "\(processes) processes × " }
        banner += "\(threads) thread\(threads == 1 ? "" : "s")"
        if let maxFds { banner += ", max fds \(maxFds)" + (processes > 1 ? " each" : "") }
        if `protocol` == .ringstorm { banner += ", on EMFILE \(onEmfile)" }
        banner += duration.map { ", for \(DurationParsing.format(nanoseconds: $0))" } ?? "; Ctrl-C to stop"
        return banner
    }

    private func finalText(_ report: ServerReport, notes: [String]) -> String {
        var text = report.text + "\n"
        let failures = report.acceptErrors.values.reduce(0, +)
        if failures > 0 && report.durationSeconds > 0 {
            text += String(format: "accept fails  %.0f per second (%@)\n", Double(failures) / report.durationSeconds,
                           onEmfile.rawValue)
        }
        for note in notes { text += "note         \(note)\n" }
        return text
    }

    private func writeJSON(_ report: ServerReport) throws {
        guard let json else { return }
        do {
            try report.json().write(to: URL(fileURLWithPath: json))
        } catch {
            throw UsageError("cannot write the report to \(json): \(error.localizedDescription); pick a writable path")
        }
    }

    // MARK: --processes N

    /// The parent of `--processes N`: reserves the port, starts N workers (this binary, `serve ...
    /// --worker-report-fd 3`), prints a live line summed over them, forwards SIGINT/SIGTERM, merges their
    /// reports exactly and reports a worker that died.
    private func runProcesses(_ times: (register: Int64, idle: Int64, report: Int64, duration: Int64?)) throws {
        let kernelAtStart = KernelCounters.read()
        let reservation: PortReservation
        do {
            reservation = try PortReservation(try AddressArgument.parse(listen, option: "--listen"))
        } catch let error as ServerError {
            throw UsageError(error.description)
        }
        var arguments = ["serve", "--protocol", `protocol`.rawValue, "--listen", reservation.address.description,
                         "--backend", backend.rawValue, "--threads", String(threads),
                         "--register-timeout", registerTimeout, "--idle-timeout", idleTimeout,
                         "--max-frame-size", maxFrameSize, "--on-emfile", onEmfile.rawValue,
                         "--report-interval", reportInterval, "--batch-wait", batchWait,
                         "--worker-report-fd", String(WorkerProcesses<ServerProcessStatus>.channelDescriptor)]
        if let maxFds { arguments += ["--max-fds", String(maxFds)] }
        if let duration { arguments += ["--duration", duration] }
        let workers: WorkerProcesses<ServerProcessStatus>
        do {
            workers = try WorkerProcesses(arguments: Array(repeating: arguments, count: processes))
        } catch {
            throw UsageError(error.description)
        }
        do {
            _ = try workers.waitUntilReady()
        } catch {
            workers.stop(graceNanoseconds: 2_000_000_000)
            throw UsageError(error.description)
        }
        FileHandleOutput.standardOutput(banner(address: reservation.address, times.duration) + "\n")

        let started = monotonicNanoseconds()
        let deadline = times.duration.map { started + $0 }
        var last = ServerSnapshot(backend: backend)
        var lastTime = started
        var nextLine = started + times.report
        var failure: WorkerFailure?
        while true {
            let now = monotonicNanoseconds()
            if let deadline, now >= deadline { break }
            if TerminationSignals.wait(nanoseconds: 0) != nil { break }
            if let f = workers.failure { failure = f; break }
            if workers.allEnded { break }
            workers.pump(timeoutNanoseconds: 100_000_000)
            guard times.report > 0, monotonicNanoseconds() >= nextLine else { continue }
            let current = workers.latest.compactMap { $0?.snapshot }.reduce(ServerSnapshot(backend: backend), +)
            let at = monotonicNanoseconds()
            nextLine = at + times.report
            FileHandleOutput.standardError(liveLine(current, last, seconds: Double(at - lastTime) / 1e9,
                                                    elapsed: Double(at - started) / 1e9))
            last = current
            lastTime = at
        }
        workers.stop()
        failure = failure ?? workers.failure
        withExtendedLifetime(reservation) {}
        let finals = workers.finals
        guard var report = ServerReport.merged(finals.map(\.report)) else {
            throw UsageError(failure?.description ?? "no worker process sent a report")
        }
        report.kernel = KernelCounters.read() - kernelAtStart
        var notes: [String] = []
        for note in finals.flatMap(\.notes) where !notes.contains(note) { notes.append(note) }
        var text = finalText(report, notes: notes)
        text += "processes    \(processes), merged exactly (counts summed)\n"
        if let failure { text += "incomplete   \(finals.count) of \(processes) worker reports: \(failure)\n" }
        FileHandleOutput.standardOutput(text)
        try writeJSON(report)
        if let failure { throw UsageError(failure.description) }
    }

    private func liveLine(_ current: ServerSnapshot, _ last: ServerSnapshot, seconds: Double, elapsed: Double) -> String {
        if `protocol` == .echo {
            // The echo server's line, as before: messages per second and syscalls per message.
            let messages = current.report.requests - last.report.requests
            let syscalls = Double(current.report.syscalls - last.report.syscalls)
            return String(format: "[%6.1fs] open %d  accepted %d  msgs/s %.0f  syscalls/msg %.3f\n",
                          elapsed, current.openConnections, current.report.accepted, Double(messages) / seconds,
                          messages > 0 ? syscalls / Double(messages) : 0)
        }
        let accepted = Double(current.report.accepted - last.report.accepted) / seconds
        let requests = Double(current.report.requests - last.report.requests) / seconds
        let failures = current.acceptErrorCount
        var line = String(format: "[%6.1fs] open %d  accepted/s %.0f  requests/s %.0f  accept errors %d",
                          elapsed, current.openConnections, accepted, requests, failures)
        if failures > last.acceptErrorCount {
            line += String(format: " (%.0f/s", Double(failures - last.acceptErrorCount) / seconds)
            line += ", " + current.report.acceptErrors.keys.sorted().map { "\($0) \(current.report.acceptErrors[$0]!)" }.joined(separator: ", ") + ")"
        }
        if current.report.shed > 0 { line += "  shed \(current.report.shed)" }
        if current.pausedListeners > 0 { line += "  accept paused" }
        return line + "\n"
    }
}

extension ServerProtocol: ExpressibleByArgument {}
extension EMFILEPolicy: ExpressibleByArgument {}
