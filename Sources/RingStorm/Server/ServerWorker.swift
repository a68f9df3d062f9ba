import RingStormEngine

/// One engine's server, whatever the protocol: accepts, applies the descriptor-exhaustion policy
/// (`AcceptGate`), runs the register deadline (protocols with a registration) and the idle deadline,
/// closes, counts and publishes snapshots. The protocol (`Proto`) only frames and answers bytes.
///
/// Generic over the engine and the protocol, so the per-event loop is specialised for both: no
/// existential call and no allocation per message. Deadlines live in a `TimerWheel` advanced by one
/// engine timer, the tick; activity only stores a timestamp, read when the wheel reaches the slot.
final class ServerWorker<Engine: NetworkEngine, Proto: ServerProtocol>: ListeningWorker {
    let engine: Engine
    let listener: ListenerID
    let address: SocketAddress

    private let proto: Proto
    private let table: ConnectionTable
    private let wheel: TimerWheel
    private let counts: UnsafeMutablePointer<ServerReport>
    private var gate: AcceptGate

    private let registerTimeout: Int64
    private let idleTimeout: Int64
    private let tickNanoseconds: Int64
    private let ticksPerPublish: Int
    private var ticksSincePublish = 0
    private var publishDue = false
    /// The time series' interval clock.
    private var intervals: ServerIntervalRecorder

    /// The time, read once per batch of events (at the first event after each `poll` started) and at
    /// every tick: deadlines are exact to about one tick anyway.
    private var now: Int64
    private var nowIsFresh = false

    private static var tickToken: UInt64 { 1 }

    init(_ engine: Engine, _ configuration: RingStormServer.Configuration, reusePort: Bool) throws {
        self.engine = engine
        listener = try engine.listen(on: configuration.listen, backlog: configuration.backlog, reusePort: reusePort)
        address = engine.localAddress(of: listener) ?? configuration.listen
        let slots = configuration.engine.maxConnections
        now = monotonicNanoseconds()
        tickNanoseconds = configuration.tick.nanoseconds
        proto = Proto(configuration: configuration, slots: slots)
        table = ConnectionTable(count: slots)
        wheel = TimerWheel(slots: slots, tickNanoseconds: tickNanoseconds, now: now)
        counts = .allocate(capacity: 1)
        counts.initialize(to: ServerReport(backend: engine.backend))
        gate = AcceptGate(policy: configuration.onEMFILE, backoffNanoseconds: configuration.pauseBackoff.nanoseconds)
        registerTimeout = Proto.registers ? configuration.registerTimeout.nanoseconds : 0
        idleTimeout = configuration.idleTimeout.nanoseconds
        let seriesEvery = configuration.reportInterval.nanoseconds > 0 ? configuration.reportInterval.nanoseconds : 1_000_000_000
        intervals = ServerIntervalRecorder(intervalNanoseconds: seriesEvery, now: UInt64(now), backend: engine.backend.rawValue)
        counts.pointee.intervalMs = max(seriesEvery, 1_000_000) / 1_000_000
        let publishEvery = min(max(configuration.reportInterval.nanoseconds, tickNanoseconds), 1_000_000_000)
        ticksPerPublish = max(Int(publishEvery / tickNanoseconds), 1)
    }

    deinit {
        counts.deinitialize(count: 1)
        counts.deallocate()
    }

    var snapshot: ServerSnapshot {
        let statistics = engine.statistics
        var s = ServerSnapshot(backend: engine.backend)
        s.report = counts.pointee
        s.report.syscalls = statistics.syscalls.total
        s.report.drainTimeouts = statistics.drainTimeouts
        s.report.directTableFull = statistics.directTableFull
        Proto.complete(&s.report, statistics: statistics)
        s.engine = statistics
        s.openConnections = engine.openConnections
        s.pausedListeners = gate.paused ? 1 : 0
        return s
    }

    func run(until stop: StopFlag, publish: (ServerSnapshot) -> Void) {
        engine.schedule(afterNanoseconds: tickNanoseconds, token: Self.tickToken)
        while !stop.isStopped {
            nowIsFresh = false
            do {
                try engine.poll(timeoutNanoseconds: tickNanoseconds) { event in handle(event) }
            } catch {
                var s = snapshot
                s.engine.notes.append("\(error)")
                publish(s)
                return
            }
            // The batch's time (read at its first event; read here only after an empty poll): an interval
            // closes within one batch of its boundary, without a clock read per loop.
            if !nowIsFresh { now = monotonicNanoseconds(); nowIsFresh = true }
            if UInt64(now) >= intervals.nextBoundary { closeInterval() }
            if publishDue { publishDue = false; publish(snapshot) }
        }
        closeInterval()
        publish(snapshot)
    }

    /// Closes the time series' current interval into the counts (once per `--report-interval`).
    private func closeInterval() {
        let s = snapshot
        counts.pointee.intervals.append(intervals.close(s.report, open: s.openConnections))
    }

    // MARK: Events

    @inline(__always)
    private func handle(_ event: Event) {
        if !nowIsFresh { now = monotonicNanoseconds(); nowIsFresh = true }
        switch event.kind {
        case .received:
            received(event.connection, event.bytes)
        case .accepted:
            accepted(event.connection)
        case .readEnded:
            guard table.isLive(event.connection) else { return }
            switch event.outcome {
            case .closedByPeer:
                // FIN: answers already queued still go out, then our FIN.
                counts.pointee.closedByPeer += 1
                close(event.connection, .orderly)
            case .resetByPeer:
                counts.pointee.resetByPeer += 1
                close(event.connection, .abortive)
            default:
                close(event.connection, .abortive)
            }
        case .sendFailed:
            guard table.isLive(event.connection) else { return }
            if event.outcome == .resetByPeer { counts.pointee.resetByPeer += 1 }
            close(event.connection, .abortive)
        case .closed:
            let slot = Int(event.connection.slot)
            // Only the occupant this `.closed` names: never a newer connection that took the slot.
            guard table.base[slot].generation == event.connection.generation else { return }
            table.base[slot].state = .free
            wheel.remove(slot)
            gate.descriptorFreed(engine: engine, listener: listener)
        case .acceptFailed:
            gate.acceptFailed(event.outcome, engine: engine, listener: event.listener, now: now, counts: counts)
        case .timer:
            guard event.token == Self.tickToken else { return }
            now = monotonicNanoseconds()
            tick()
            engine.schedule(afterNanoseconds: tickNanoseconds, token: Self.tickToken)
        case .connected:
            break
        }
    }

    private func accepted(_ id: ConnectionID) {
        let slot = Int(id.slot)
        let c = table.base + slot
        c.pointee.generation = id.generation
        c.pointee.lastActivity = now
        proto.accepted(slot: slot)
        if Proto.registers {
            c.pointee.state = .awaitingRegister
            c.pointee.registerDeadline = now &+ registerTimeout
            if registerTimeout > 0 { wheel.schedule(slot, at: c.pointee.registerDeadline) } else { wheel.remove(slot) }
        } else {
            c.pointee.state = .open
            if idleTimeout > 0 { wheel.schedule(slot, at: now &+ idleTimeout) } else { wheel.remove(slot) }
        }
        counts.pointee.accepted &+= 1
        let open = engine.openConnections
        if open > counts.pointee.peakOpen { counts.pointee.peakOpen = open }
    }

    @inline(__always)
    private func received(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) {
        guard table.isLive(id) else { return }
        let slot = Int(id.slot)
        let c = table.base + slot
        c.pointee.lastActivity = now
        switch proto.received(bytes, on: id, registered: c.pointee.state == .open, engine: engine, report: counts) {
        case .answered:
            break
        case .registered:
            c.pointee.state = .open
            // From now on the idle deadline runs (it may come before the register deadline).
            if idleTimeout > 0 { wheel.schedule(slot, at: now &+ idleTimeout) } else { wheel.remove(slot) }
        case .violated:
            counts.pointee.protocolErrors += 1
            close(id, .orderly)
        case .finished:
            close(id, .orderly)
        }
    }

    private func close(_ id: ConnectionID, _ mode: CloseMode) {
        table.base[Int(id.slot)].state = .closing
        wheel.remove(Int(id.slot))
        engine.close(id, mode: mode)
    }

    // MARK: Ticks

    private func tick() {
        wheel.advance(to: now, deadlineOf: deadline(of:), expire: expire(_:))
        gate.tick(engine: engine, listener: listener, now: now, counts: counts)
        ticksSincePublish += 1
        if ticksSincePublish >= ticksPerPublish {
            ticksSincePublish = 0
            publishDue = true
        }
    }

    /// The slot's current deadline, or nil when it has none (closing, free, or no timeout applies).
    private func deadline(of slot: Int) -> Int64? {
        let c = table.base[slot]
        switch c.state {
        case .awaitingRegister: return registerTimeout > 0 ? c.registerDeadline : nil
        case .open: return idleTimeout > 0 ? c.lastActivity &+ idleTimeout : nil
        case .free, .closing: return nil
        }
    }

    private func expire(_ slot: Int) {
        let c = table.base[slot]
        let id = ConnectionID(slot: UInt32(slot), generation: c.generation)
        switch c.state {
        case .awaitingRegister:
            proto.registerTimedOut(id, timeout: registerTimeout, engine: engine)
            counts.pointee.registerTimeouts += 1
            close(id, .orderly)
        case .open:
            counts.pointee.idleClosed += 1
            close(id, .orderly)
        case .free, .closing:
            break
        }
    }
}
