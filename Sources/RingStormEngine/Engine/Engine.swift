/// The kernel-facing half of an engine: how it arms, submits and reaps. Everything else (slots,
/// connection state, listeners, counters, timers, send queues, the close decisions) is the
/// `EngineCore` it is created with and works on in place.
///
/// Implemented by `UringDriver` and `EpollDriver`; an embedder uses `Engine<Driver>` through its
/// names `UringEngine` and `EpollEngine`, never a driver itself.
public protocol EngineDriver: AnyObject {
    static var backend: Backend { get }

    init(core: EngineCore) throws(EngineError)

    /// Starts accepting on a listener the core has just opened and added: arms its accept, or
    /// registers it (and on failure closes and removes it again).
    func startAccepting(_ listener: ListenerID) throws(EngineError)

    /// Accepts again on a listener the core has just unpaused.
    func resumeAccepting(_ listener: ListenerID, waitForConnection: Bool)

    /// Starts the connect of a connection the core has just opened. `deadline` (monotonic nanoseconds;
    /// 0: none, the kernel's own) is absolute, from the moment `connect` was called: time spent in the
    /// socket and bind calls and in a loop that polls late counts against it.
    func connect(_ id: ConnectionID, to destination: SocketAddress, deadline: Int64) throws(Errno)

    /// Sends at once what the kernel takes now, if this driver writes through; returns what is left to
    /// queue (all of `bytes` when it does not), nil when nothing is.
    func sendNow(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer?

    /// Backpressure began on the connection: stop what reads it.
    func pauseReceiving(_ id: ConnectionID)

    /// Closes a connection the core decided to close now (`prepareClose` is the driver's first step).
    func beginClose(_ slot: UInt32, mode: CloseMode)

    func poll(timeoutNanoseconds: Int64?, _ handler: (Event) -> Void) throws(EngineError) -> Int
}

/// A network engine: the shared core plus one driver. Each `NetworkEngine` call is the core's
/// bookkeeping and at most a hook or two of the driver's; the per-completion work is the driver's own
/// concrete code on the core's flat arrays.
public final class Engine<Driver: EngineDriver>: NetworkEngine {
    let core: EngineCore
    let driver: Driver

    public init(configuration: EngineConfiguration = EngineConfiguration()) throws(EngineError) {
        core = EngineCore(backend: Driver.backend, configuration: configuration)
        driver = try Driver(core: core)
    }

    public var backend: Backend { Driver.backend }

    public func listen(on address: SocketAddress, backlog: Int32, reusePort: Bool) throws(EngineError) -> ListenerID {
        let listener = core.add(try core.openListener(on: address, backlog: backlog, reusePort: reusePort))
        try driver.startAccepting(listener)
        return listener
    }

    public func localAddress(of listener: ListenerID) -> SocketAddress? { core.localAddress(of: listener) }

    public func resumeAccepting(_ listener: ListenerID, waitForConnection: Bool) {
        if core.unpause(listener) { driver.resumeAccepting(listener, waitForConnection: waitForConnection) }
    }

    public func shedOne(_ listener: ListenerID) -> Bool { core.shedOne(listener) }

    public func connect(to destination: SocketAddress, from source: SocketAddress?, timeoutNanoseconds: Int64) throws(Errno) -> ConnectionID {
        // The deadline runs from now: a slow socket/bind (a port search near exhaustion) or a late poll
        // does not stretch it.
        let deadline = timeoutNanoseconds > 0 ? monotonicNanoseconds() + timeoutNanoseconds : 0
        let id = try core.openClient(to: destination, from: source)
        try driver.connect(id, to: destination, deadline: deadline)
        return id
    }

    public func send(_ connection: ConnectionID, _ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, core.acceptsSends(connection), let rest = driver.sendNow(connection, bytes) else { return }
        if core.enqueue(rest, for: connection.slot) { driver.pauseReceiving(connection) }
    }

    public func pendingBytes(_ connection: ConnectionID) -> Int { core.pendingBytes(connection) }

    public func close(_ connection: ConnectionID, mode: CloseMode) {
        if let mode = core.closeRequested(connection, mode: mode) {
            driver.beginClose(connection.slot, mode: mode)
        } else if core.isCurrent(connection) && core.connections[Int(connection.slot)].lifecycle == .draining {
            driver.pauseReceiving(connection)  // draining: not read any more (io_uring cancels the receive)
        }
    }

    public func schedule(afterNanoseconds delay: Int64, token: UInt64) {
        core.schedule(afterNanoseconds: delay, token: token)
    }

    @discardableResult
    public func poll(timeoutNanoseconds: Int64?, _ handler: (Event) -> Void) throws(EngineError) -> Int {
        // Close deadlines, for both drivers: an orderly close that could not drain is aborted here, and
        // the driver's close goes out with this poll.
        if core.hasDrainDeadlines {
            core.expireDrains(now: monotonicNanoseconds(), { slot in driver.beginClose(slot, mode: .abortive) }, handler)
        }
        return try driver.poll(timeoutNanoseconds: timeoutNanoseconds, handler)
    }

    public var statistics: EngineStatistics { core.statistics }

    public var openConnections: Int { core.slots.inUse }
}

/// The io_uring engine (see `UringDriver`).
public typealias UringEngine = Engine<UringDriver>

/// The epoll engine (see `EpollDriver`).
public typealias EpollEngine = Engine<EpollDriver>
