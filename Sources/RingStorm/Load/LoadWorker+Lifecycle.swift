import Glibc
import RingStormEngine

/// A connection's life: connect, first message, active, and how it ends (a failure counted by phase and
/// outcome, the deadline, a reconnect after a backoff), with its line in the connections log.
extension LoadWorker {
    // MARK: Connecting

    /// Client `c`'s source address (the run's round-robin by global client number: see `WorkSplit`).
    func source(of c: Int) -> SocketAddress? {
        config.sources.isEmpty ? nil : config.sources[sourceIndex(of: c)]
    }

    /// Which of the worker's source addresses client `c` uses (0 without `--source`): also its port
    /// pool's queue.
    func sourceIndex(of c: Int) -> Int {
        config.sources.isEmpty ? 0 : c % config.sources.count
    }

    /// Client `c`'s source address with a port of the worker's own (`LocalPorts.assign`), or as
    /// `source(of:)` when the worker does not assign ports or its slice is used up (the kernel picks).
    func sourceWithPort(of c: Int, kernelPicks: Bool) -> SocketAddress? {
        guard let ports, !kernelPicks, let port = ports.take(source: sourceIndex(of: c)) else { return source(of: c) }
        clients[c].localPort = port
        var address = source(of: c) ?? (config.target.isIPv6 ? SocketAddress(ipv6: in6addr_any, port: 0) : SocketAddress(ipv4Value: 0, port: 0))
        address.port = port
        return address
    }

    /// Client `c`'s connection is gone: its assigned port is free again.
    func releasePort(of c: Int) {
        let port = clients[c].localPort
        guard port != 0, let ports else { return }
        clients[c].localPort = 0
        ports.give(port, source: sourceIndex(of: c))
    }

    /// Assigned ports tried for one connect before the kernel picks one.
    static var portTries: Int { 4 }

    func startConnect(_ c: Int, now: Int64) {
        report.connections.attempted += 1
        clients[c].attempt += 1
        clients[c].connectStartedAt = now
        clients[c].connectMicroseconds = -1
        clients[c].registerMicroseconds = -1
        clients[c].inFlight = 0
        clients[c].oldest = 0
        clients[c].answered = 0
        clients[c].peerCloses = false
        wireStates[c] = wire.newConnection(client: firstClient + c)
        // An assigned port may still be held by a socket outside our control (a TIME_WAIT left by a
        // run that did not set SO_REUSEADDR, another program): EADDRINUSE at bind. The port goes to
        // the back of the queue and the next one is tried; after `portTries` the kernel picks.
        // Timed: socket, bind and (epoll) connect run on this thread, and a port search near exhaustion
        // stalls the whole loop here (the generator's health).
        let callStarted = monotonicNanoseconds()
        defer { report.generator.recordConnectCall(nanoseconds: monotonicNanoseconds() - callStarted) }
        var id = ConnectionID.none
        var tries = 0
        while true {
            do {
                id = try engine.connect(to: config.target, from: sourceWithPort(of: c, kernelPicks: tries >= Self.portTries),
                                        timeoutNanoseconds: config.connectTimeoutNanoseconds)
                break
            } catch {
                let assigned = clients[c].localPort != 0
                releasePort(of: c)
                if assigned && error == .addressInUse {
                    tries += 1
                    report.generator.portsInUse += 1
                    continue
                }
                // The socket could not even be made (EMFILE, ENFILE, ...): a connect outcome like any other.
                clients[c].stage = .connecting
                fail(c, phase: .connect, FailureOutcome(Outcome(error), in: .connect) ?? .other(error.name), mode: nil)
                return
            }
        }
        clients[c].connection = id
        clients[c].stage = .connecting
        slotClient[Int(id.slot)] = Int32(c)
    }

    func connected(_ c: Int, _ outcome: Outcome) {
        guard clients[c].stage == .connecting else { return }
        let now = monotonicNanoseconds()
        guard outcome == .success else {
            // The engine already released the slot.
            slotClient[Int(clients[c].connection.slot)] = -1
            clients[c].connection = .none
            releasePort(of: c)
            fail(c, phase: .connect, FailureOutcome(outcome, in: .connect) ?? .other(outcome.name), mode: nil)
            return
        }
        report.connections.established += 1
        report.latency.connect.record(from: UInt64(clients[c].connectStartedAt), to: UInt64(now))
        clients[c].connectMicroseconds = (now - clients[c].connectStartedAt) / 1000
        clients[c].connectedAt = now
        open += 1
        if open > report.connections.peakOpen { report.connections.peakOpen = open }
        if open == clientCount && steadySince == 0 {
            steadySince = now
            answeredAtSteady = report.requests.answered
        }
        if sendsFirstMessage {
            clients[c].stage = .registering
            clients[c].registerSentAt = now
            engine.send(clients[c].connection, wire.firstMessage(client: firstClient + c, &wireStates[c]))
            wheel.wake(c, at: now + config.requestTimeoutNanoseconds)
        } else {
            becomeActive(c, now: now)
        }
    }

    func registered(_ c: Int, now: Int64) {
        report.latency.register.record(from: UInt64(clients[c].registerSentAt), to: UInt64(now))
        clients[c].registerMicroseconds = (now - clients[c].registerSentAt) / 1000
        becomeActive(c, now: now)
    }

    func becomeActive(_ c: Int, now: Int64) {
        clients[c].stage = .active
        clients[c].consecutiveFailures = 0
        wheel.cancel(c)
        guard !stopping else { return }
        startRequests(c, now: now)
    }

    // MARK: Endings

    /// Whether client `c` still waits for its first message's answer or for responses.
    @inline(__always)
    func awaitsAnswers(_ c: Int) -> Bool {
        clients[c].stage == .registering || (clients[c].stage == .active && clients[c].inFlight > 0)
    }

    @inline(__always)
    func phase(of c: Int) -> Phase {
        switch clients[c].stage {
        case .connecting, .queued, .backingOff: .connect
        case .registering: .register
        case .active: clients[c].inFlight > 0 ? .request : .idle
        case .closing, .done: .idle
        }
    }

    /// The deadline: close one of our own connections. Neither that nor a request in flight is a failure.
    func closeAtEnd(_ c: Int, now: Int64) {
        switch clients[c].stage {
        case .connecting, .registering, .active:
            if stopping && awaitsAnswers(c) { finishing -= 1 }
            if clients[c].stage != .connecting { open -= 1 }
            logLifecycle(c, phase: phase(of: c), outcome: ConnectionRecord.endOfRun, now: now)
            wheel.cancel(c)
            clients[c].stage = .closing
            engine.close(clients[c].connection, mode: .orderly)
        case .queued, .backingOff:
            clients[c].stage = .done
        case .closing, .done:
            break
        }
    }

    /// After the deadline, a client whose last answer just arrived closes.
    @inline(__always)
    func finishIfAnswered(_ c: Int, now: Int64) {
        guard stopping, clients[c].stage == .active, clients[c].inFlight == 0 else { return }
        finishing -= 1
        closeAtEnd(c, now: now)
    }

    /// A connection failed in `phase`: count it, log it, close it (`mode` nil: the engine already has).
    func fail(_ c: Int, phase: Phase, _ outcome: FailureOutcome, mode: CloseMode?) {
        let now = monotonicNanoseconds()
        report.outcomes.record(outcome, in: phase)
        if stopping && awaitsAnswers(c) { finishing -= 1 }
        if clients[c].stage == .registering || clients[c].stage == .active { open -= 1 }
        logLifecycle(c, phase: phase, outcome: outcome.name, now: now)
        wheel.cancel(c)
        clients[c].consecutiveFailures += 1
        clients[c].stage = .closing
        if let mode {
            engine.close(clients[c].connection, mode: mode)
        } else {
            clients[c].connection = .none
            lifecycleEnded(c, now: now)
        }
    }

    /// The connection is gone: reconnect after a backoff, or stop.
    func lifecycleEnded(_ c: Int, now: Int64) {
        guard config.reconnect && !stopping else {
            clients[c].stage = .done
            return
        }
        let failures = max(Int(clients[c].consecutiveFailures), 1)
        var backoff = config.reconnectMinimumNanoseconds
        for _ in 1..<min(failures, 40) where backoff < config.reconnectMaximumNanoseconds { backoff *= 2 }
        backoff = min(backoff, config.reconnectMaximumNanoseconds)
        backoff = config.jittered(backoff, client: firstClient + c, attempt: clients[c].attempt)
        clients[c].stage = .backingOff
        wheel.wake(c, at: now + backoff)
    }

    func logLifecycle(_ c: Int, phase: Phase, outcome: String, now: Int64) {
        guard let log else { return }
        log.append(ConnectionRecord(
            id: firstClient + c, attempt: Int(clients[c].attempt), source: source(of: c),
            connectMicroseconds: clients[c].connectMicroseconds, registerMicroseconds: clients[c].registerMicroseconds,
            requestsAnswered: clients[c].answered, phase: phase, outcome: outcome,
            lifetimeMicroseconds: (now - clients[c].connectStartedAt) / 1000))
    }
}
