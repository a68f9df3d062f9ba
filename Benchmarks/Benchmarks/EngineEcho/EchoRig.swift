import Dispatch
import Glibc
import RingStormEngine
import Synchronization

/// An echo server engine and a client engine, each on a thread of its own, talking over loopback in one
/// process. The client holds `connections` open connections; `roundTrips(_:)` sends `count` 64-byte
/// messages closed-loop, one in flight per connection, and returns when every echo is back. The engines
/// never leave their threads (an io_uring set up with `SINGLE_ISSUER` belongs to the thread that made it);
/// the benchmark thread talks to them through a mutex, an atomic flag and semaphores.
///
/// The server loop is the one `RingStorm.EchoServer` runs (send back what arrives, close on the peer's FIN),
/// written out here because `EchoServer` publishes its counters about once a second, and the benchmark
/// needs the server's syscall count exactly at the start and end of each measured iteration.
final class EchoRig: Sendable {
    static let messageSize = 64

    let backend: Backend
    let connections: Int
    private let server: EngineThread
    private let client: EngineThread

    /// `batchWaitMicroseconds`: io_uring's batch wait for both engines (nil: the default, 50 µs).
    init(backend: Backend, connections: Int, batchWaitMicroseconds: UInt32? = nil) throws {
        self.backend = backend
        self.connections = connections
        var configuration = EngineConfiguration()
        configuration.maxConnections = max(connections + 64, 1024)
        if let batchWaitMicroseconds { configuration.batchWaitMicroseconds = batchWaitMicroseconds }
        let engineConfiguration = configuration
        server = try EngineThread(name: "echo-server") { thread in
            try runServer(backend, engineConfiguration, thread)
        }
        guard let address = server.address else {
            server.stop()
            throw RigError("the server reported no address")
        }
        do {
            client = try EngineThread(name: "echo-client") { thread in
                try runClient(backend, engineConfiguration, connections: connections, to: address, thread)
            }
        } catch {
            server.stop()
            throw error
        }
    }

    /// The client's and the server's engine-counted syscalls so far (read on their own threads).
    func syscalls() throws -> (client: Int, server: Int) {
        (try client.request(.snapshot), try server.request(.snapshot))
    }

    /// Runs `count` round trips; throws if they do not all come back within the client's deadline.
    func roundTrips(_ count: Int) throws {
        _ = try client.request(.run(count))
    }

    /// Closes the client's connections (orderly) and ends both threads.
    func stop() {
        client.stop()
        server.stop()
    }
}

struct RigError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - A thread that owns one engine

/// What the benchmark thread asks an engine thread to do.
enum Command: Sendable {
    /// Report the engine's syscall total.
    case snapshot
    /// (client) Run this many round trips.
    case run(Int)
}

/// One engine on its own pthread. The body builds the engine on that thread, calls `ready(address:)`
/// once set up, then loops, taking the benchmark thread's commands between polls (`takeCommand`, for a
/// loop that polls anyway) or blocking for them (`waitCommand`, for one with nothing to do meanwhile).
final class EngineThread: @unchecked Sendable {
    // @unchecked: every field is immutable after init, or a Mutex, an Atomic or a DispatchSemaphore;
    // `thread` is written in init and read by `stop` after the pthread was created.
    private let pending = Mutex<Command?>(nil)
    private let hasCommand = Atomic<Bool>(false)
    private let commandPosted = DispatchSemaphore(value: 0)
    private let answer = Mutex<Result<Int, RigError>>(.success(0))
    private let answered = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)
    private let setUp = DispatchSemaphore(value: 0)
    private let setup = Mutex<Result<SocketAddress?, RigError>>(.success(nil))
    private let finished = Atomic<Bool>(false)
    private var thread = pthread_t()

    /// The server's bound address (nil for a client).
    var address: SocketAddress? { (try? setup.withLock { $0 }.get()) ?? nil }

    init(name: String, _ body: @escaping @Sendable (EngineThread) throws -> Void) throws {
        let box = Unmanaged.passRetained(ThreadBody { [self] in
            do {
                try body(self)
            } catch {
                fail("\(name): \(error)")
            }
            // Whatever happened, nobody may stay blocked on this thread.
            finished.store(true, ordering: .releasing)
            setUp.signal()
            answered.signal()
        }).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(box).release()
            throw RigError("\(name): pthread_create failed with \(result)")
        }
        setUp.wait()
        if case .failure(let error) = setup.withLock({ $0 }) {
            stopped.store(true, ordering: .releasing)
            commandPosted.signal()
            pthread_join(thread, nil)
            throw error
        }
    }

    // MARK: Called on the engine thread

    /// Set-up finished: the engine is ready (and, for a server, listening at `address`).
    func ready(address: SocketAddress?) {
        setup.withLock { $0 = .success(address) }
        setUp.signal()
    }

    private func fail(_ message: String) {
        let error = RigError(message)
        setup.withLock { if case .success = $0 { $0 = .failure(error) } }
        answer.withLock { $0 = .failure(error) }
    }

    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// The pending command, if any: one atomic load when there is none.
    @inline(__always)
    func takeCommand() -> Command? {
        guard hasCommand.load(ordering: .acquiring) else { return nil }
        hasCommand.store(false, ordering: .relaxed)
        return pending.withLock { command in
            let taken = command
            command = nil
            return taken
        }
    }

    /// Blocks until a command comes (nil: stop).
    func waitCommand() -> Command? {
        while true {
            if isStopped { return nil }
            if let command = takeCommand() { return command }
            commandPosted.wait()
        }
    }

    /// Answers the command taken.
    func reply(_ result: Result<Int, RigError>) {
        answer.withLock { $0 = result }
        answered.signal()
    }

    // MARK: Called on the benchmark thread

    func request(_ command: Command) throws -> Int {
        if finished.load(ordering: .acquiring) { return try answer.withLock { $0 }.get() }
        pending.withLock { $0 = command }
        hasCommand.store(true, ordering: .releasing)
        commandPosted.signal()
        answered.wait()
        return try answer.withLock { $0 }.get()
    }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        commandPosted.signal()
        pthread_join(thread, nil)
    }
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

// MARK: - The server loop

/// Echo server on one engine: every received byte goes back; the peer's FIN closes in order.
private func runServer(_ backend: Backend, _ configuration: EngineConfiguration, _ thread: EngineThread) throws {
    struct Serve: EngineBody {
        let thread: EngineThread
        func run<E: NetworkEngine>(on engine: E) throws { try serve(engine, thread) }
    }
    try withEngine(backend, configuration: configuration, Serve(thread: thread))
}

private func serve<Engine: NetworkEngine>(_ engine: Engine, _ thread: EngineThread) throws {
    let listener = try engine.listen(on: SocketAddress(parsing: "127.0.0.1:0"), backlog: 4096, reusePort: false)
    guard let address = engine.localAddress(of: listener), address.port != 0 else {
        throw RigError("the server's listener has no bound port")
    }
    thread.ready(address: address)
    while !thread.isStopped {
        // 1 ms: while idle between iterations the loop still answers snapshot requests promptly.
        try engine.poll(timeoutNanoseconds: 1_000_000) { event in
            switch event.kind {
            case .received:
                engine.send(event.connection, event.bytes)
            case .readEnded:
                engine.close(event.connection, mode: event.outcome == .closedByPeer ? .orderly : .abortive)
            case .sendFailed:
                engine.close(event.connection, mode: .abortive)
            case .acceptFailed:
                if event.outcome.pausesAccepting { engine.resumeAccepting(listener) }
            case .accepted, .connected, .closed, .timer:
                break
            }
        }
        if let command = thread.takeCommand() {
            switch command {
            case .snapshot: thread.reply(.success(engine.statistics.syscalls.total))
            case .run: thread.reply(.failure(RigError("the server runs no round trips")))
            }
        }
    }
}

// MARK: - The client loop

private func runClient(_ backend: Backend, _ configuration: EngineConfiguration, connections: Int,
                       to address: SocketAddress, _ thread: EngineThread) throws {
    struct Client: EngineBody {
        let connections: Int, slots: Int, address: SocketAddress, thread: EngineThread
        func run<E: NetworkEngine>(on engine: E) throws {
            try EchoClient(engine, connections: connections, slots: slots).run(to: address, thread)
        }
    }
    try withEngine(backend, configuration: configuration,
                   Client(connections: connections, slots: configuration.maxConnections, address: address, thread: thread))
}

/// Closed-loop echo client: `connections` connections, at most one 64-byte message in flight on each.
private final class EchoClient<Engine: NetworkEngine> {
    let engine: Engine
    let count: Int
    private var ids: [ConnectionID] = []
    /// Echo bytes received but not yet making up a whole message, by slot.
    private let partial: UnsafeMutableBufferPointer<Int>
    private let message: UnsafeMutableRawBufferPointer
    private var sent = 0
    private var completed = 0
    private var target = 0
    private var failure: String?

    init(_ engine: Engine, connections: Int, slots: Int) {
        self.engine = engine
        count = connections
        partial = .allocate(capacity: slots)
        partial.initialize(repeating: 0)
        message = .allocate(byteCount: EchoRig.messageSize, alignment: 8)
        for i in 0..<EchoRig.messageSize { message[i] = UInt8(ascii: "a") &+ UInt8(i % 26) }
    }

    deinit {
        partial.deallocate()
        message.deallocate()
    }

    func run(to address: SocketAddress, _ thread: EngineThread) throws {
        try connectAll(to: address)
        thread.ready(address: nil)
        while let command = thread.waitCommand() {
            switch command {
            case .snapshot:
                thread.reply(.success(engine.statistics.syscalls.total))
            case .run(let roundTrips):
                do {
                    try roundTrip(roundTrips)
                    thread.reply(.success(roundTrips))
                } catch let error as RigError {
                    thread.reply(.failure(error))
                }
            }
        }
        closeAll()
    }

    private func connectAll(to address: SocketAddress) throws {
        var connected = 0
        var refused: Outcome?
        // Connect in waves of at most 256 so the listener's accept queue never overflows.
        var started = 0
        let deadline = monotonicNanoseconds() + 20_000_000_000
        while connected < count {
            while started < count && started - connected < 256 {
                ids.append(try engine.connect(to: address, from: nil, timeoutNanoseconds: 5_000_000_000))
                started += 1
            }
            try engine.poll(timeoutNanoseconds: 10_000_000) { event in
                if event.kind == .connected {
                    if event.outcome == .success { connected += 1 } else { refused = event.outcome }
                }
            }
            if let refused { throw RigError("connect failed: \(refused)") }
            if monotonicNanoseconds() > deadline { throw RigError("only \(connected) of \(count) connections in 20 s") }
        }
    }

    private func roundTrip(_ roundTrips: Int) throws {
        sent = 0
        completed = 0
        target = roundTrips
        let bytes = UnsafeRawBufferPointer(message)
        for id in ids.prefix(min(count, roundTrips)) {
            engine.send(id, bytes)
            sent += 1
        }
        let deadline = monotonicNanoseconds() + 30_000_000_000
        while completed < target {
            try engine.poll(timeoutNanoseconds: 10_000_000) { event in handle(event) }
            if let failure { throw RigError(failure) }
            if monotonicNanoseconds() > deadline {
                throw RigError("\(completed) of \(target) round trips in 30 s")
            }
        }
    }

    @inline(__always)
    private func handle(_ event: Event) {
        switch event.kind {
        case .received:
            let slot = Int(event.connection.slot)
            var have = partial[slot] + event.bytes.count
            while have >= EchoRig.messageSize {
                have -= EchoRig.messageSize
                completed += 1
                if sent < target {
                    engine.send(event.connection, UnsafeRawBufferPointer(message))
                    sent += 1
                }
            }
            partial[slot] = have
        case .readEnded, .sendFailed:
            failure = "connection \(event.connection): \(event.kind) \(event.outcome)"
        case .closed:
            failure = "connection \(event.connection) closed"
        case .accepted, .acceptFailed, .connected, .timer:
            break
        }
    }

    private func closeAll() {
        for id in ids { engine.close(id, mode: .orderly) }
        let deadline = monotonicNanoseconds() + 5_000_000_000
        while engine.openConnections > 0 && monotonicNanoseconds() < deadline {
            _ = try? engine.poll(timeoutNanoseconds: 10_000_000) { _ in }
        }
    }
}
