import Glibc
import RingStormEngine

/// What one worker thread is given: its share of the run (`LoadGenerator.Configuration.narrowed(to:)`)
/// and the connections log all workers append to.
struct LoadWorkerPlan: Sendable {
    var configuration: LoadGenerator.Configuration
    var logFile: ConnectionLogFile?

    /// The load loop for this plan, with the engine and the client protocol both concrete: the one
    /// place both choices are opened (`withEngine` for the backend, `WireProtocol.withClient` for the
    /// protocol), on the worker's own thread.
    func makeWorker() throws(EngineError) -> any EngineWorker<LoadWorkerSnapshot> {
        var plan = self
        // One connection per client at most, plus a few slots of slack for closes still finishing.
        plan.configuration.engine.maxConnections = configuration.connections + 16
        // Only open-loop sends have a time to be on: the closed loop and silent clients never spin.
        plan.configuration.engine.spinNanoseconds = configuration.pacing.openLoopIntervalNanoseconds == nil ? 0 : configuration.sendSpinNanoseconds
        // The kernel searches only this worker's slice of the ports (`WorkSplit`).
        if configuration.localPorts == .range, let r = configuration.localPortRange,
           r.lowerBound >= 1, r.upperBound <= Int(UInt16.max) {
            plan.configuration.engine.localPortRange = UInt16(r.lowerBound)...UInt16(r.upperBound)
        }
        struct Make: EngineBody {
            let plan: LoadWorkerPlan
            func run<E: NetworkEngine>(on engine: E) -> any EngineWorker<LoadWorkerSnapshot> {
                plan.configuration.wireProtocol.withClient(BuildLoadWorker(engine: engine, plan: plan))
            }
        }
        do { return try withEngine(plan.configuration.backend, configuration: plan.configuration.engine, Make(plan: plan)) }
        catch let error as EngineError { throw error }
        catch { preconditionFailure("engine set-up throws only EngineError, got \(error)") }
    }
}

private struct BuildLoadWorker<E: NetworkEngine>: ClientProtocolBody {
    let engine: E
    let plan: LoadWorkerPlan

    func run<P: ClientProtocol>(_ client: P.Type) -> any EngineWorker<LoadWorkerSnapshot> {
        // Built here, where engine and protocol are concrete, so its loop is specialised for both.
        SpecializedWorker(LoadWorker<E, P>(engine, client.init(plan.configuration), plan))
    }
}

/// The load loop for one concrete engine and one client protocol (`LoadWorker<UringEngine,
/// RingStormClientProtocol>`), so every per-event engine call and every encode/decode is direct. The loop owns
/// pacing (`LoadWorker+Pacing`), the connection lifecycle and its endings (`LoadWorker+Lifecycle`),
/// outcomes, latencies and the connections log; the protocol only encodes and decodes.
///
/// All state lives in flat storage indexed by client number (0..<clients, this worker's own; the global
/// number is `firstClient + c`); the engine's `ConnectionID.slot` maps to the client through
/// `slotClient`. Timers: one engine tick turns a `DeadlineWheel`; no engine timer per connection.
final class LoadWorker<Engine: NetworkEngine, Wire: ClientProtocol>: EngineWorker {
    let engine: Engine
    let wire: Wire
    let config: LoadGenerator.Configuration
    let firstClient: Int
    let clientCount: Int
    let clients: FlatArray<ClientState>
    /// The protocol's state of each client's current connection.
    let wireStates: FlatArray<Wire.Connection>
    /// Slot → client number, -1 when the slot is not ours.
    let slotClient: FlatArray<Int32>
    /// Per client, `maxInFlight` send times (intended times, open loop) of requests in flight, a ring.
    let sendTimes: FlatArray<Int64>
    /// Open loop: beside each `sendTimes` entry, when the request was actually handed to the engine.
    let actualSendTimes: FlatArray<Int64>
    /// Open loop (`--interval`, `--rate`): each connection's interval between sends; nil otherwise.
    let openLoopInterval: Int64?
    let maxInFlight: Int
    let sendsFirstMessage: Bool
    /// The HTTP client's request line start (`GET `), to recognise an echo of it (`PeerSignals`).
    let requestLineStart: [UInt8]?
    let wheel: DeadlineWheel
    var queue: ClientQueue
    var report: LoadWorkerReport
    /// The per-request latencies, counted flat and folded into `report.latency` and `intervals` at each
    /// snapshot and interval close.
    let tallies = LatencyTallies()
    var open = 0
    /// The time series: the current interval's counts and request latencies.
    var intervals: LoadIntervalRecorder
    let log: ConnectionLogWriter?

    /// When queued connects start (this worker's share of the connect rate).
    var pacer: ConnectPacer
    /// Source ports the worker assigns itself (`LocalPorts.assign`), nil otherwise.
    let ports: PortPool?

    var stopping = false
    /// After the deadline: connections still waiting for answers before they close.
    var finishing = 0
    var startedAt: Int64 = 0
    /// epoll: time inside `engine.send`, which writes through (the generator's health).
    var sendCallNanoseconds: Int64 = 0
    let timesSends: Bool
    /// This thread's CPU seconds at the last snapshot, and when the run (drain included) ended.
    var cpuAtSnapshot = 0.0
    var lastActiveAt: Int64 = 0
    var finishedAt: Int64 = 0
    var finished = false
    /// The steady window (`SteadyWindow`): when all this worker's connections were first open at once
    /// (0: not yet), and the answers counted by then and at the deadline.
    var steadySince: Int64 = 0
    var answeredAtSteady = 0
    var answeredAtDeadline = 0

    /// Tick timers carry this bit plus a serial: only the latest scheduled tick counts.
    static var tickTokenBit: UInt64 { 1 << 48 }
    /// When the pending tick fires (`.max`: none pending) and its token.
    var tickAt: Int64 = .max
    var tickToken: UInt64 = 0
    static var tickNanoseconds: Int64 { 1_000_000 }

    init(_ engine: Engine, _ wire: Wire, _ plan: LoadWorkerPlan) {
        self.engine = engine
        self.wire = wire
        config = plan.configuration
        firstClient = config.firstClient
        clientCount = config.connections
        clients = FlatArray(repeating: ClientState(), count: clientCount)
        wireStates = FlatArray(repeating: wire.newConnection(client: 0), count: clientCount)
        slotClient = FlatArray(repeating: -1, count: config.engine.maxConnections + 1)
        maxInFlight = config.maxInFlight
        sendTimes = FlatArray(repeating: 0, count: clientCount * maxInFlight)
        openLoopInterval = config.pacing.openLoopIntervalNanoseconds
        timesSends = engine.backend == .epoll
        actualSendTimes = FlatArray(repeating: 0, count: openLoopInterval == nil ? 1 : clientCount * maxInFlight)
        sendsFirstMessage = config.pacing != .silent && Wire.sendsFirstMessage(config)
        requestLineStart = config.wireProtocol == .http ? Array((config.http.method + " ").utf8) : nil
        wheel = DeadlineWheel(clients: clientCount, tickNanoseconds: Self.tickNanoseconds, now: monotonicNanoseconds())
        queue = ClientQueue(capacity: clientCount)
        report = LoadWorkerReport(backend: engine.backend)
        report.intervalMs = config.reportIntervalNanoseconds / 1_000_000
        intervals = LoadIntervalRecorder(intervalNanoseconds: config.reportIntervalNanoseconds, now: UInt64(monotonicNanoseconds()))
        log = plan.logFile.map { ConnectionLogWriter(fd: $0.fd) }
        pacer = ConnectPacer(ratePerSecond: config.connectRate, now: monotonicNanoseconds())
        if config.localPorts == .assign, let range = config.localPortRange {
            ports = PortPool(sources: max(config.sources.count, 1), ports: range)
        } else {
            ports = nil
        }
    }

    deinit {
        clients.deallocate()
        wireStates.deallocate()
        slotClient.deallocate()
        sendTimes.deallocate()
        actualSendTimes.deallocate()
        queue.deallocate()
        ports?.deallocate()
    }

    /// This worker's report so far. Made on the worker's own thread (its CPU time is this thread's).
    var snapshot: LoadWorkerSnapshot {
        tallies.fold(into: &report.latency, interval: &intervals)
        var r = report
        let statistics = engine.statistics
        r.syscalls = statistics.syscalls.total
        r.backendFeatures = statistics.features
        let now = monotonicNanoseconds()
        r.durationSeconds = Double((finished ? finishedAt : now) - startedAt) / 1e9
        r.generator.submitMicroseconds = Int((statistics.submitNanoseconds + sendCallNanoseconds) / 1000)
        r.generator.completionQueueOverflows = statistics.completionQueueOverflows
        r.generator.bufferExhaustions = statistics.bufferExhaustions
        if !finished { cpuAtSnapshot = threadCPUSeconds() }
        r.generator.cpuSeconds = cpuAtSnapshot
        let ran = Double((finished ? lastActiveAt : now) - startedAt) / 1e9
        r.generator.maxWorkerCPU = ran > 0.05 ? cpuAtSnapshot / ran : 0
        if steadySince > 0 {
            let end = finished ? finishedAt : now
            r.steady = SteadyWindow(answered: (finished ? answeredAtDeadline : report.requests.answered) - answeredAtSteady,
                                    seconds: Double(max(end - steadySince, 0)) / 1e9)
        }
        return LoadWorkerSnapshot(report: r, open: open, finished: finished)
    }

    // MARK: The run

    func run(until stop: StopFlag, publish: (LoadWorkerSnapshot) -> Void) {
        if let startAt = config.startAtNanoseconds {
            // --start-at: every shard's workers wait for the same wall-clock instant, engines set up.
            let late = StartTime.wait(until: startAt) { stop.isStopped }
            report.startLateByMs = Double(late / 1000) / 1000
        }
        report.startedAtMs = wallClockNanoseconds() / 1_000_000
        startedAt = monotonicNanoseconds()
        intervals = LoadIntervalRecorder(intervalNanoseconds: config.reportIntervalNanoseconds, now: UInt64(startedAt))
        pacer = ConnectPacer(ratePerSecond: config.connectRate, now: startedAt)
        let deadline = startedAt + config.durationNanoseconds
        for c in 0..<clientCount { queue.push(c) }
        startConnections(now: startedAt)
        scheduleTick(at: startedAt + Self.tickNanoseconds, now: startedAt)
        var nextPublish = startedAt + 1_000_000_000
        var now = startedAt
        while !stop.isStopped && now < deadline {
            do {
                let untilInterval = max(Int64(intervals.nextBoundary) - now, 0)
                try engine.poll(timeoutNanoseconds: min(100_000_000, untilInterval, max(deadline - now, 0))) { event in handle(event) }
            } catch {
                break
            }
            now = monotonicNanoseconds()
            tickForNewDeadlines(now: now)
            var closed = false
            while now >= Int64(intervals.nextBoundary) {
                tallies.fold(into: &report.latency, interval: &intervals)
                intervals.close(into: &report, open: open)
                closed = true
            }
            // Published at least once a second, and at each interval's end but at most every 50 ms: the
            // live view prints whole intervals, so publishing late delays a line but never skews it.
            if now >= nextPublish || (closed && now >= nextPublish - 950_000_000) {
                nextPublish = now + 1_000_000_000
                publish(snapshot)
            }
        }
        finishedAt = min(monotonicNanoseconds(), deadline)
        answeredAtDeadline = report.requests.answered
        // The last (partial) interval takes the answers that come in while the run drains too, so the
        // series adds up to the totals; its `open` is the count at the deadline, before the closes.
        let openAtDeadline = open
        // The end: no new requests; connections with answers still due get them first (up to the drain
        // time), so we close with nothing unread and the server sees FIN, not the RST a close with
        // unread bytes sends. The rest close at once.
        stopping = true
        for c in 0..<clientCount {
            if awaitsAnswers(c) { finishing += 1 } else { closeAtEnd(c, now: monotonicNanoseconds()) }
        }
        let drainUntil = monotonicNanoseconds() + config.drainNanoseconds
        while engine.openConnections > 0 && monotonicNanoseconds() < drainUntil {
            do { try engine.poll(timeoutNanoseconds: 10_000_000) { event in handle(event) } } catch { break }
            if finishing == 0 { break }
        }
        for c in 0..<clientCount { closeAtEnd(c, now: monotonicNanoseconds()) }
        let closedUntil = monotonicNanoseconds() + config.drainNanoseconds
        while engine.openConnections > 0 && monotonicNanoseconds() < closedUntil {
            do { try engine.poll(timeoutNanoseconds: 10_000_000) { event in handle(event) } } catch { break }
        }
        tallies.fold(into: &report.latency, interval: &intervals)
        intervals.close(into: &report, open: openAtDeadline)
        log?.flush()
        report.connectionsLogFailure = log?.failure
        cpuAtSnapshot = threadCPUSeconds()
        lastActiveAt = monotonicNanoseconds()
        finished = true
        publish(snapshot)
    }

    // MARK: Events

    @inline(__always)
    func client(of connection: ConnectionID) -> Int? {
        let slot = Int(connection.slot)
        guard slot < slotClient.count else { return nil }
        let c = Int(slotClient[slot])
        guard c >= 0, clients[c].connection == connection else { return nil }
        return c
    }

    @inline(__always)
    func handle(_ event: Event) {
        switch event.kind {
        case .received:
            guard let c = client(of: event.connection) else { return }
            received(c, event.bytes)
        case .timer:
            if event.token == tickToken {
                report.generator.recordTick(due: tickAt, now: monotonicNanoseconds())
                tickAt = .max
                tick()
            }
        case .connected:
            guard let c = client(of: event.connection) else { return }
            connected(c, event.outcome)
        case .readEnded, .sendFailed:
            guard let c = client(of: event.connection) else { return }
            let stage = clients[c].stage
            guard stage == .registering || stage == .active else { return }
            let phase = phase(of: c)
            fail(c, phase: phase, FailureOutcome(event.outcome, in: phase) ?? .closed,
                 mode: event.outcome == .closedByPeer ? .orderly : .abortive)
        case .closed:
            guard let c = client(of: event.connection) else { return }
            slotClient[Int(event.connection.slot)] = -1
            clients[c].connection = .none
            releasePort(of: c)
            if clients[c].stage == .closing { lifecycleEnded(c, now: monotonicNanoseconds()) }
        case .accepted, .acceptFailed:
            break
        }
    }

    // MARK: Receiving

    @inline(__always)
    func received(_ c: Int, _ bytes: UnsafeRawBufferPointer) {
        let stage = clients[c].stage
        guard stage == .registering || stage == .active else { return }
        if case .silent = config.pacing { return }  // a silent client ignores what it is sent
        let now = monotonicNanoseconds()
        let inFlight = Int(clients[c].inFlight)
        let expecting = ClientExpectation(client: firstClient + c, firstMessage: stage == .registering, inFlight: inFlight,
                                          oldestSequence: clients[c].sequence &- UInt64(inFlight))
        let got = wire.received(bytes, &wireStates[c], expecting: expecting)
        if got.firstMessageAnswered { registered(c, now: now) }
        if got.peerCloses { clients[c].peerCloses = true }
        for _ in 0..<got.responses { answerOldest(c, now: now) }
        if got.http.total > 0 { report.http.merge(got.http) }
        if let failure = got.failure {
            report.peerSignals.record(bytes, requestLine: requestLineStart)
            if let reason = failure.serverReason { report.serverErrors[reason, default: 0] += 1 }
            fail(c, phase: failure.phase ?? phase(of: c), .protocolError, mode: .abortive)
            return
        }
        if got.responses > 0 { scheduleActive(c) }
        if stopping { finishIfAnswered(c, now: now) }
    }
}

/// The calling thread's CPU time, user plus system, in seconds (`getrusage(RUSAGE_THREAD)`; 0 if refused).
func threadCPUSeconds() -> Double {
    var usage = rusage()
    guard getrusage(__rusage_who_t(1) /* RUSAGE_THREAD */, &usage) == 0 else { return 0 }
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}
