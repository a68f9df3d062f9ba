import Glibc
import RingStormEngine

/// One run of the repro: the server in a child process (`ringstorm serve` with its configuration as a
/// `WorkerAssignment`, max fds and EMFILE policy included; it reports like a worker of `serve
/// --processes`), the two client groups in this process on their own engine threads.
///
/// ```swift
/// let run = try ReproRun(configuration: configuration)   // the server listens, the clients are connecting
/// while !run.isFinished { run.poll(timeoutNanoseconds: 100_000_000) }
/// let report = try run.finish()                           // the server stopped, both sides' reports
/// ```
/// Used from one thread. `stop()` ends the clients early (Ctrl-C); the server is always stopped after
/// them, so that closing its listener does not reset clients still queued.
public final class ReproRun {
    public let configuration: Repro.Configuration
    /// Where the server listens (loopback, a port the kernel chose).
    public let address: SocketAddress
    private let server: WorkerProcesses<ServerSnapshot>
    private let registering: LoadGenerator
    private var silent: LoadGenerator?
    private let started: Int64
    private var stopped = false

    public init(configuration: Repro.Configuration) throws(ReproError) {
        try configuration.validate()
        self.configuration = configuration
        let c = configuration
        var serverConfiguration = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
        serverConfiguration.protocol = .ringstorm
        serverConfiguration.backend = c.backend
        serverConfiguration.maxFDs = c.maxFDs
        serverConfiguration.onEMFILE = c.policy
        serverConfiguration.registerTimeout = .nanoseconds(c.registerTimeoutNanoseconds)
        serverConfiguration.idleTimeout = .seconds(60)
        // Progress every tick: the server's side is taken at the clients' deadline.
        serverConfiguration.reportInterval = .milliseconds(100)
        serverConfiguration.reusePort = true
        // spin: no io_uring batch wait (50 µs per enter by default), so the loop is as tight as a naive
        // server's and the cost shows in full.
        if c.policy == .spin { serverConfiguration.engine.batchWaitMicroseconds = 0 }
        // A bound in case this process dies without stopping it.
        let assignment = WorkerAssignment(serverConfiguration, progressIntervalNanoseconds: 100_000_000,
                                          durationNanoseconds: c.durationNanoseconds + 30_000_000_000)
        do {
            server = try WorkerProcesses(executable: c.executable, arguments: ["serve"], assignments: [assignment])
        } catch {
            throw ReproError("cannot start the server: \(error)")
        }
        let ready: String
        do {
            ready = try server.waitUntilReady()[0]
        } catch {
            server.stop(graceNanoseconds: 2_000_000_000)
            throw ReproError("the server did not start: \(error.description.replacingOccurrences(of: "worker 1 of 1", with: "server"))")
        }
        guard let bound = try? SocketAddress(parsing: ready), bound.port != 0 else {
            server.stop(graceNanoseconds: 2_000_000_000)
            throw ReproError("the server reported no address ('\(ready)'); is \(c.executable) a ringstorm of this build?")
        }
        address = bound
        registering = LoadGenerator(configuration: c.registering(target: bound))
        do {
            try registering.start()
        } catch {
            server.stop(graceNanoseconds: 2_000_000_000)
            throw ReproError("cannot start the registering clients: \(error)")
        }
        started = monotonicNanoseconds()
    }

    /// Seconds since the clients started.
    public var elapsedSeconds: Double { Double(monotonicNanoseconds() - started) / 1e9 }

    /// Reads the server's progress (waiting up to `timeoutNanoseconds`) and starts the silent clients
    /// when their time has come.
    public func poll(timeoutNanoseconds: Int64) {
        let deadline = started + configuration.durationNanoseconds
        let untilDeadline = deadline - monotonicNanoseconds()
        server.pump(timeoutNanoseconds: untilDeadline > 0 ? min(timeoutNanoseconds, untilDeadline) : timeoutNanoseconds)
        if monotonicNanoseconds() < deadline && !stopped, let latest = server.latest[0] {
            serverBeforeDeadline = latest.report
        }
        if silent == nil && configuration.silent > 0 && !stopped
            && monotonicNanoseconds() - started >= configuration.silentDelayNanoseconds {
            let generator = LoadGenerator(configuration: configuration.silentClients(target: address))
            do {
                try generator.start()
                silent = generator
            } catch {
                // Reported at the end: the silent group shows no connections.
                silentStartError = "\(error)"
            }
        }
    }

    private var silentStartError: String?
    /// The server's counts as last reported before the clients' deadline (or `stop()`).
    private var serverBeforeDeadline: ServerReport?

    /// Whether the clients are done (both groups finished, or stopped), or the server died.
    public var isFinished: Bool {
        if server.failure != nil { return true }
        let silentDue = configuration.silent > 0 && silent == nil && silentStartError == nil && !stopped
        return registering.isFinished && !silentDue && (silent?.isFinished ?? true)
    }

    /// Ends the clients early (they close their connections as at the deadline).
    public func stop() {
        stopped = true
        registering.stop()
        silent?.stop()
    }

    /// The live counts: the server's (as last reported, about once a second) and each group's.
    public var progress: (server: ServerSnapshot?, registering: LoadProgress, silent: LoadProgress?) {
        (server.latest[0] ?? nil, registering.progress, silent?.progress)
    }

    /// Waits for the clients, stops the server, and returns both sides' reports with the explanation. The
    /// server's side is its last report before the clients' deadline (it reports every 100 ms), so both
    /// sides cover the same time; what it did after the clients left is kept apart (`serverFinal`).
    public func finish() throws(ReproError) -> ReproReport {
        let registeringReport = registering.wait()
        let silentReport = silent?.wait()
        server.stop(graceNanoseconds: 10_000_000_000)
        let worker = server.workers[0]
        if let failure = server.failure {
            throw ReproError("the server " + failure.description.replacingOccurrences(of: "worker 1 of 1 ", with: ""))
        }
        guard let final = worker.final else { throw ReproError("the server sent no report") }
        return ReproReport(configuration: configuration, address: address, server: serverBeforeDeadline ?? final.report,
                           serverFinal: final.report,
                           serverCPU: worker.process.usage ?? ResourceUsage(userSeconds: 0, systemSeconds: 0),
                           registering: registeringReport, silent: silentReport,
                           notes: final.engine.notes + (silentStartError.map { ["the silent clients could not start: \($0)"] } ?? []))
    }
}
