import RingStormEngine

/// `ringstorm serve` as a library: a server of the `ringstorm` protocol or of `echo`
/// (`configuration.protocol`) on the engine, one engine and one `SO_REUSEPORT` listener per thread. Both
/// protocols get the same descriptor policies, timeouts and report (`ServerWorker`).
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

    private let workers: WorkerThreads<ServerSnapshot>
    private let started: Int64
    private let restoreLimit: Int?
    /// The kernel's network counters when the server started, for the report's `kernel` delta.
    private let kernelAtStart = KernelCounters.read()
    /// When it started, wall clock (Unix ms), for the report's provenance.
    private let startedAtMs = wallClockNanoseconds() / 1_000_000
    private let finished: Locked<ServerReport?>
    /// The process's resident set before the engines are made, and at the most connections open.
    private let memory = MemorySampler()

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
            let fixed = config
            (workers, address) = try WorkerThreads.listening(count: config.threads, on: config.listen,
                                                             exclusive: !config.reusePort) { address, reusePort in
                var c = fixed
                c.listen = address
                return try withEngine(c.backend, configuration: c.engine, MakeWorker(configuration: c, reusePort: reusePort))
            }
        } catch {
            if let previousLimit { try? DescriptorLimit.setSoft(previousLimit) }
            if let e = error as? ServerError { throw e }
            if let e = error as? EngineError { throw .engine(e) }
            throw .invalidConfiguration("\(error)")
        }
        started = monotonicNanoseconds()
    }

    /// The summed counters as last published by the workers (about once a second, or every
    /// `reportInterval` if shorter), with the time since the server started.
    public var progress: ServerSnapshot {
        var s = workers.snapshots.compactMap { $0 }.reduce(ServerSnapshot(backend: configuration.backend), +)
        s.report.durationSeconds = elapsedSeconds
        memory.sample(open: s.openConnections)
        s.report.memory = memory.use
        return s
    }

    /// Asks the workers to stop; `wait` returns once they have.
    public func stop() {
        workers.stop()
    }

    /// Waits for the workers to stop (call `stop` first, or from another thread), restores the
    /// descriptor limit `maxFDs` lowered, and returns the final report. Later calls return it again.
    public func wait() -> ServerReport { waitForSnapshot().report }

    /// As `wait`, with the engines' own counters.
    public func waitForSnapshot() -> ServerSnapshot {
        var s = workers.join().reduce(ServerSnapshot(backend: configuration.backend), +)
        let report = finished.withLock { saved -> ServerReport in
            if let saved { return saved }
            var r = s.report
            r.durationSeconds = elapsedSeconds
            r.kernel = KernelCounters.read() - kernelAtStart
            r.provenance = configuration.provenance(startedAtMs: startedAtMs, backendFeatures: s.engine.features)
            r.memory = memory.use
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

/// Builds one worker on `engine`: the one place the protocol kind becomes a type (opened from
/// `ServerProtocolKind.withImplementation`), so `ServerWorker` is specialised for engine and protocol.
private struct MakeWorker: EngineBody {
    let configuration: RingStormServer.Configuration
    let reusePort: Bool

    func run<E: NetworkEngine>(on engine: E) throws -> any ListeningWorker<ServerSnapshot> {
        try configuration.protocol.withImplementation(MakeProtocolWorker(engine: engine, configuration: configuration, reusePort: reusePort))
    }
}

private struct MakeProtocolWorker<E: NetworkEngine>: ServerProtocolBody {
    let engine: E
    let configuration: RingStormServer.Configuration
    let reusePort: Bool

    func run<P: ServerProtocol>(_: P.Type) throws -> any ListeningWorker<ServerSnapshot> {
        // Built here, where engine and protocol are concrete, so its loop is specialised for both.
        SpecializedWorker(try ServerWorker<E, P>(engine, configuration, reusePort: reusePort))
    }
}
