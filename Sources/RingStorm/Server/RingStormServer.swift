import RingStormEngine

/// `ringstorm serve` as a library: a server of the `ringstorm` protocol (or the echo protocol) on the
/// engine, one engine and one `SO_REUSEPORT` listener per thread.
///
/// ```swift
/// var configuration = RingStormServer.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"))
/// configuration.idleTimeout = .seconds(10)
/// let server = try RingStormServer(configuration: configuration)   // listening when it returns
/// print(server.address)
/// let report = try await server.run(for: .seconds(30))             // or: server.stop(); server.wait()
/// ```
public final class RingStormServer: Sendable {
    public let configuration: Configuration
    /// The bound address (the kernel's port when 0 was asked for).
    public let address: SocketAddress

    private let body: Body
    private let started: Int64
    private let restoreLimit: Int?
    /// The kernel's network counters when the server started, for the report's `kernel` delta.
    private let kernelAtStart = KernelCounters.read()
    private let finished: Locked<ServerReport?>

    private enum Body: Sendable {
        case ringstorm(WorkerThreads<ServerSnapshot>)
        case echo(EchoServer)
    }

    /// Lowers the descriptor limit if asked, starts the threads and returns once every one listens.
    public init(configuration: Configuration) throws(ServerError) {
        try configuration.validate()
        var config = configuration
        var previousLimit: Int? = nil
        if let maxFDs = configuration.maxFDs {
            previousLimit = DescriptorLimit.current.soft
            try DescriptorLimit.setSoft(maxFDs)
        }
        // No engine needs more slots than descriptors the process may open.
        if config.engine.maxConnections <= 0 { config.engine.maxConnections = min(DescriptorLimit.current.soft, 1 << 20) }
        self.configuration = config
        restoreLimit = previousLimit
        finished = Locked(nil)
        do {
            switch config.protocol {
            case .ringstorm:
                let fixed = config
                let (workers, bound) = try WorkerThreads.listening(count: config.threads, on: config.listen,
                                                                   exclusive: !config.reusePort) { address, reusePort in
                    var c = fixed
                    c.listen = address
                    struct Make: EngineBody {
                        let configuration: RingStormServer.Configuration
                        let reusePort: Bool
                        func run<E: NetworkEngine>(on engine: E) throws -> any ListeningWorker<ServerSnapshot> {
                            try ServerWorker(engine, configuration, reusePort: reusePort)
                        }
                    }
                    return try withEngine(c.backend, configuration: c.engine, Make(configuration: c, reusePort: reusePort))
                }
                body = .ringstorm(workers)
                address = bound
            case .echo:
                var echo = EchoServer.Configuration(listen: config.listen)
                echo.backend = config.backend
                echo.threads = config.threads
                echo.backlog = config.backlog
                echo.engine = config.engine
                echo.reusePort = config.reusePort
                let server = try EchoServer(configuration: echo)
                body = .echo(server)
                address = server.address
            }
        } catch {
            if let previousLimit { try? DescriptorLimit.setSoft(previousLimit) }
            if let e = error as? EngineError { throw .engine(e) }
            throw .invalidConfiguration("\(error)")
        }
        started = monotonicNanoseconds()
    }

    /// The summed counters as last published by the workers (about once a second, or every
    /// `reportInterval` if shorter), with the time since the server started.
    public var progress: ServerSnapshot {
        var s: ServerSnapshot
        switch body {
        case .ringstorm(let workers):
            s = workers.snapshots.compactMap { $0 }.reduce(ServerSnapshot(backend: configuration.backend), +)
        case .echo(let server):
            s = ServerSnapshot(echo: server.progress)
        }
        s.report.durationSeconds = elapsedSeconds
        return s
    }

    /// Asks the workers to stop; `wait` returns once they have.
    public func stop() {
        switch body {
        case .ringstorm(let workers): workers.stop()
        case .echo(let server): server.stop()
        }
    }

    /// Waits for the workers to stop (call `stop` first, or from another thread), restores the
    /// descriptor limit `maxFDs` lowered, and returns the final report. Later calls return it again.
    public func wait() -> ServerReport { waitForSnapshot().report }

    /// As `wait`, with the engines' own counters.
    public func waitForSnapshot() -> ServerSnapshot {
        var s: ServerSnapshot
        switch body {
        case .ringstorm(let workers):
            s = workers.join().reduce(ServerSnapshot(backend: configuration.backend), +)
        case .echo(let server):
            s = ServerSnapshot(echo: server.wait())
        }
        let report = finished.withLock { saved -> ServerReport in
            if let saved { return saved }
            var r = s.report
            r.durationSeconds = elapsedSeconds
            r.kernel = KernelCounters.read() - kernelAtStart
            saved = r
            return r
        }
        if let restoreLimit { try? DescriptorLimit.setSoft(restoreLimit) }
        s.report = report
        return s
    }

    /// Serves for `duration`, then stops and returns the final report. Cancelling the task stops the
    /// server early (the report is then thrown away and `CancellationError` thrown).
    public func run(for duration: Duration) async throws -> ServerReport {
        do {
            try await Task.sleep(for: duration)
        } catch {
            stop()
            _ = wait()
            throw error
        }
        stop()
        return wait()
    }

    /// Starts a server, serves for `duration` and returns the report.
    public static func run(_ configuration: Configuration, for duration: Duration) async throws -> ServerReport {
        let server = try RingStormServer(configuration: configuration)
        return try await server.run(for: duration)
    }

    private var elapsedSeconds: Double { Double(monotonicNanoseconds() - started) / 1e9 }
}

/// Passes the first worker's bound port to the others (port 0 must mean one port for all threads).
/// Workers are set up one after another, so no two threads touch it at once.

