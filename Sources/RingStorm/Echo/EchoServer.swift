import RingStormEngine

/// Counters of one echo worker, or of all of them summed.
public struct EchoSnapshot: Sendable {
    public var engine: EngineStatistics
    public var accepted = 0
    public var messages = 0
    public var openConnections = 0
    public var acceptPauses = 0

    public init(backend: Backend) { engine = EngineStatistics(backend: backend) }

    public static func + (a: EchoSnapshot, b: EchoSnapshot) -> EchoSnapshot {
        var s = a
        s.engine = a.engine + b.engine
        s.accepted += b.accepted
        s.messages += b.messages
        s.openConnections += b.openConnections
        s.acceptPauses += b.acceptPauses
        return s
    }

    /// Syscalls per received message: the figure to compare with the yardsticks' syscalls/msg.
    public var syscallsPerMessage: Double { messages == 0 ? 0 : Double(engine.syscalls.total) / Double(messages) }
}

/// A raw TCP echo server: every byte received is sent back, in order, with the engine's backpressure.
/// One engine and one `SO_REUSEPORT` listener per thread.
public final class EchoServer: Sendable {
    public struct Configuration: Sendable {
        public var listen: SocketAddress
        public var backend: Backend = .uring
        public var threads: Int = 1
        public var backlog: Int32 = 4096
        public var engine = EngineConfiguration()
        /// `SO_REUSEPORT` even with one thread, to share the port with other processes (`--processes`).
        public var reusePort = false

        public init(listen: SocketAddress) { self.listen = listen }
    }

    public let configuration: Configuration
    private let workers: WorkerThreads<EchoSnapshot>
    /// The bound address (the kernel's port when 0 was asked for).
    public let address: SocketAddress

    public init(configuration: Configuration) throws {
        self.configuration = configuration
        (workers, address) = try WorkerThreads.listening(count: configuration.threads, on: configuration.listen,
                                                         exclusive: !configuration.reusePort) { address, reusePort in
            var config = configuration
            config.listen = address
            struct Make: EngineBody {
                let configuration: EchoServer.Configuration
                let reusePort: Bool
                func run<E: NetworkEngine>(on engine: E) throws -> any ListeningWorker<EchoSnapshot> {
                    try EchoWorker(engine, configuration, reusePort: reusePort)
                }
            }
            return try withEngine(config.backend, configuration: config.engine, Make(configuration: config, reusePort: reusePort))
        }
    }

    /// Summed counters as last published by the workers.
    public var progress: EchoSnapshot {
        workers.snapshots.compactMap { $0 }.reduce(EchoSnapshot(backend: configuration.backend), +)
    }

    public func stop() { workers.stop() }

    /// Waits for the workers to stop (after `stop`), returns the final summed counters.
    public func wait() -> EchoSnapshot {
        workers.join().reduce(EchoSnapshot(backend: configuration.backend), +)
    }
}

final class EchoWorker<Engine: NetworkEngine>: ListeningWorker {
    let engine: Engine
    let listener: ListenerID
    let address: SocketAddress
    private var counters: EchoSnapshot
    private var acceptPaused = false

    private static var tick: UInt64 { 1 }
    private static var resume: UInt64 { 2 }

    init(_ engine: Engine, _ configuration: EchoServer.Configuration, reusePort: Bool) throws {
        self.engine = engine
        listener = try engine.listen(on: configuration.listen, backlog: configuration.backlog, reusePort: reusePort)
        address = engine.localAddress(of: listener) ?? configuration.listen
        counters = EchoSnapshot(backend: engine.backend)
    }

    var snapshot: EchoSnapshot {
        var s = counters
        s.engine = engine.statistics
        s.openConnections = engine.openConnections
        return s
    }

    func run(until stop: StopFlag, publish: (EchoSnapshot) -> Void) {
        engine.schedule(afterNanoseconds: 1_000_000_000, token: Self.tick)
        while !stop.isStopped {
            do {
                try engine.poll(timeoutNanoseconds: 100_000_000) { event in handle(event) }
            } catch {
                counters.engine.notes.append("\(error)")
                break
            }
            if publishDue { publishDue = false; publish(snapshot) }
        }
        publish(snapshot)
    }

    private var publishDue = false

    @inline(__always)
    private func handle(_ event: Event) {
        switch event.kind {
        case .received:
            counters.messages &+= 1
            engine.send(event.connection, event.bytes)
        case .accepted:
            counters.accepted &+= 1
        case .readEnded:
            // FIN: send back what is queued, then close. RST or an error: nothing left to deliver.
            engine.close(event.connection, mode: event.outcome == .closedByPeer ? .orderly : .abortive)
        case .sendFailed:
            engine.close(event.connection, mode: .abortive)
        case .acceptFailed:
            if event.outcome.pausesAccepting && !acceptPaused {
                // Out of descriptors: wait for one to free (a close) or 100 ms, whichever first.
                acceptPaused = true
                counters.acceptPauses += 1
                engine.schedule(afterNanoseconds: 100_000_000, token: Self.resume)
            }
        case .closed:
            if acceptPaused { resumeAccepting() }
        case .timer:
            if event.token == Self.tick {
                publishDue = true
                engine.schedule(afterNanoseconds: 1_000_000_000, token: Self.tick)
            } else if event.token == Self.resume && acceptPaused {
                resumeAccepting()
            }
        case .connected:
            break
        }
    }

    private func resumeAccepting() {
        acceptPaused = false
        engine.resumeAccepting(listener)
    }
}
