import RingStormEngine

/// What one worker thread is given: its share of the clients and what all workers share.
struct LoadWorkerPlan: Sendable {
    var configuration: LoadGenerator.Configuration
    /// Global number of this worker's first client, and how many it runs.
    var firstClient: Int
    var clientCount: Int
    var logFile: ConnectionLogFile?
}

/// The load loop for one concrete engine (`LoadWorker<UringEngine>`, `LoadWorker<EpollEngine>`), so every
/// per-event engine call is direct. All state lives in flat storage indexed by client number; the
/// engine's `ConnectionID.slot` maps to the client through `slotClient`. Timers: one engine tick turns
/// a `DeadlineWheel`; no engine timer per connection.
final class LoadWorker<Engine: NetworkEngine>: EngineWorker {
    let engine: Engine
    private let config: LoadGenerator.Configuration
    private let firstClient: Int
    private let clientCount: Int
    private let clients: FlatArray<ClientState>
    private let decoders: FlatArray<FrameDecoder>
    /// Slot → client number, -1 when the slot is not ours.
    private let slotClient: FlatArray<Int32>
    /// Per client, `maxInFlight` send times (intended times, open loop) of requests in flight, a ring.
    private let sendTimes: FlatArray<Int64>
    private let maxInFlight: Int
    private let wheel: DeadlineWheel
    private var queue: ClientQueue
    private var report: LoadWorkerReport
    private var open = 0
    private var log: ConnectionLogWriter?

    /// Connect-rate token bucket.
    private var tokens: Double = 1
    private var lastRefill: Int64 = 0

    /// Encoded messages: the echo message, the echo first message, a REGISTER/REQUEST scratch.
    private let echoMessage: UnsafeMutableRawBufferPointer
    private let firstMessage: UnsafeMutableRawBufferPointer
    private let scratch: UnsafeMutableRawBufferPointer

    private let sources: [SocketAddress]
    private var stopping = false
    /// After the deadline: connections still waiting for answers before they close.
    private var finishing = 0
    private var startedAt: Int64 = 0
    private var finishedAt: Int64 = 0
    private var finished = false

    /// Tick timers carry this bit plus a serial: only the latest scheduled tick counts.
    private static var tickTokenBit: UInt64 { 1 << 48 }
    /// When the pending tick fires (`.max`: none pending) and its token.
    private var tickAt: Int64 = .max
    private var tickToken: UInt64 = 0
    private static var tickNanoseconds: Int64 { 1_000_000 }

    init(_ engine: Engine, _ plan: LoadWorkerPlan) {
        self.engine = engine
        config = plan.configuration
        firstClient = plan.firstClient
        clientCount = plan.clientCount
        clients = FlatArray(repeating: ClientState(), count: clientCount)
        decoders = FlatArray(repeating: FrameDecoder(maxFrameSize: max(plan.configuration.maxFrameSize, 17)), count: clientCount)
        slotClient = FlatArray(repeating: -1, count: plan.configuration.engine.maxConnections + 1)
        maxInFlight = plan.configuration.maxInFlight
        sendTimes = FlatArray(repeating: 0, count: clientCount * maxInFlight)
        wheel = DeadlineWheel(clients: clientCount, tickNanoseconds: Self.tickNanoseconds, now: monotonicNanoseconds())
        queue = ClientQueue(capacity: clientCount)
        report = LoadWorkerReport(backend: engine.backend)
        log = plan.logFile.map { ConnectionLogWriter(fd: $0.fd) }
        sources = plan.configuration.sources

        echoMessage = .allocate(byteCount: max(config.messageSize, 1), alignment: 16)
        FrameEncoder.encodeEcho(size: config.messageSize, into: echoMessage)
        firstMessage = .allocate(byteCount: max(config.firstMessageSize, 1), alignment: 16)
        FrameEncoder.encodeEcho(size: config.firstMessageSize, into: firstMessage)
        scratch = .allocate(byteCount: max(WireFormat.requestFrameSize(payloadSize: config.messageSize), config.registrationSize,
                                           WireFormat.registerFrameSize), alignment: 16)
    }

    deinit {
        clients.deallocate()
        decoders.deallocate()
        slotClient.deallocate()
        sendTimes.deallocate()
        queue.deallocate()
        echoMessage.deallocate()
        firstMessage.deallocate()
        scratch.deallocate()
    }

    var snapshot: LoadWorkerSnapshot {
        var r = report
        r.syscalls = engine.statistics.syscalls.total
        r.durationSeconds = Double((finished ? finishedAt : monotonicNanoseconds()) - startedAt) / 1e9
        return LoadWorkerSnapshot(report: r, open: open, finished: finished)
    }

    // MARK: The run

    func run(until stop: StopFlag, publish: (LoadWorkerSnapshot) -> Void) {
        startedAt = monotonicNanoseconds()
        lastRefill = startedAt
        let deadline = startedAt + config.durationNanoseconds
        for c in 0..<clientCount { queue.push(c) }
        startConnections(now: startedAt)
        scheduleTick(at: startedAt + Self.tickNanoseconds, now: startedAt)
        var nextPublish = startedAt + 1_000_000_000
        var now = startedAt
        while !stop.isStopped && now < deadline {
            do {
                try engine.poll(timeoutNanoseconds: min(100_000_000, max(deadline - now, 0))) { event in handle(event) }
            } catch {
                break
            }
            now = monotonicNanoseconds()
            tickForNewDeadlines(now: now)
            if now >= nextPublish {
                nextPublish = now + 1_000_000_000
                publish(snapshot)
            }
        }
        finishedAt = min(monotonicNanoseconds(), deadline)
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
        log?.flush()
        finished = true
        publish(snapshot)
    }

    /// Whether client `c` still waits for a REGISTERED or for responses.
    @inline(__always)
    private func awaitsAnswers(_ c: Int) -> Bool {
        clients[c].stage == .registering || (clients[c].stage == .active && clients[c].inFlight > 0)
    }

    /// The deadline: close one of our own connections. Neither that nor a request in flight is a failure.
    private func closeAtEnd(_ c: Int, now: Int64) {
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
    private func finishIfAnswered(_ c: Int, now: Int64) {
        guard stopping, clients[c].stage == .active, clients[c].inFlight == 0 else { return }
        finishing -= 1
        closeAtEnd(c, now: now)
    }

    // MARK: Events

    @inline(__always)
    private func client(of connection: ConnectionID) -> Int? {
        let slot = Int(connection.slot)
        guard slot < slotClient.count else { return nil }
        let c = Int(slotClient[slot])
        guard c >= 0, clients[c].connection == connection else { return nil }
        return c
    }

    @inline(__always)
    private func handle(_ event: Event) {
        switch event.kind {
        case .received:
            guard let c = client(of: event.connection) else { return }
            received(c, event.bytes)
        case .timer:
            if event.token == tickToken {
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
            if clients[c].stage == .closing { lifecycleEnded(c, now: monotonicNanoseconds()) }
        case .accepted, .acceptFailed:
            break
        }
    }

    private func tick() {
        let now = monotonicNanoseconds()
        wheel.advance(to: now) { c in wake(c, now: now) }
        if !stopping { startConnections(now: now) }
        // Tick when something is due, not every millisecond: an idle or slow open-loop run would
        // otherwise cost a thousand wake-ups (and io_uring_enter calls) a second per thread.
        var next = wheel.nextDue() ?? .max
        if !stopping && !queue.isEmpty { next = min(next, now + Self.tickNanoseconds) }  // connect pacing
        next = min(next, now + 100_000_000)
        scheduleTick(at: max(next, now), now: now)
    }

    /// Brings the tick forward when a handler asked the wheel for an earlier wake-up than it is set for.
    @inline(__always)
    private func tickForNewDeadlines(now: Int64) {
        let requested = wheel.takeEarliestRequest()
        if requested != .max { scheduleTick(at: wheel.dueTime(of: requested), now: now) }
    }

    private func scheduleTick(at time: Int64, now: Int64) {
        guard time < tickAt else { return }
        tickAt = time
        tickToken = Self.tickTokenBit | (tickToken &+ 1) & (Self.tickTokenBit - 1)
        engine.schedule(afterNanoseconds: max(0, time - now), token: tickToken)
    }

    // MARK: Connecting

    private func startConnections(now: Int64) {
        guard !queue.isEmpty else { return }
        if config.connectRate <= 0 {
            while let c = queue.pop() { startConnect(c, now: now) }
            return
        }
        let elapsed = Double(now - lastRefill) / 1e9
        lastRefill = now
        let burst = max(1, config.connectRate / 100)  // at most 10 ms worth at once
        tokens = min(tokens + elapsed * config.connectRate, burst)
        while tokens >= 1, let c = queue.pop() {
            tokens -= 1
            startConnect(c, now: now)
        }
    }

    private func source(of c: Int) -> SocketAddress? {
        sources.isEmpty ? nil : sources[(firstClient + c) % sources.count]
    }

    private func startConnect(_ c: Int, now: Int64) {
        report.connectionsAttempted += 1
        clients[c].attempt += 1
        clients[c].connectStartedAt = now
        clients[c].connectMicroseconds = -1
        clients[c].registerMicroseconds = -1
        clients[c].inFlight = 0
        clients[c].oldest = 0
        clients[c].answered = 0
        clients[c].echoedBytes = 0
        decoders[c].reset()
        let id: ConnectionID
        do {
            id = try engine.connect(to: config.target, from: source(of: c), timeoutNanoseconds: config.connectTimeoutNanoseconds)
        } catch {
            // The socket could not even be made (EMFILE, ENFILE, ...): a connect outcome like any other.
            clients[c].stage = .connecting
            fail(c, phase: .connect, FailureOutcome(Outcome(error), in: .connect) ?? .other(error.name), mode: nil)
            return
        }
        clients[c].connection = id
        clients[c].stage = .connecting
        slotClient[Int(id.slot)] = Int32(c)
    }

    private func connected(_ c: Int, _ outcome: Outcome) {
        guard clients[c].stage == .connecting else { return }
        let now = monotonicNanoseconds()
        guard outcome == .success else {
            // The engine already released the slot.
            slotClient[Int(clients[c].connection.slot)] = -1
            clients[c].connection = .none
            fail(c, phase: .connect, FailureOutcome(outcome, in: .connect) ?? .other(outcome.name), mode: nil)
            return
        }
        report.connectionsEstablished += 1
        report.connectLatency.record(from: UInt64(clients[c].connectStartedAt), to: UInt64(now))
        clients[c].connectMicroseconds = (now - clients[c].connectStartedAt) / 1000
        clients[c].connectedAt = now
        open += 1
        if open > report.peakOpen { report.peakOpen = open }
        if config.registers {
            clients[c].stage = .registering
            clients[c].registerSentAt = now
            if config.wireProtocol == .ringstorm {
                let n = FrameEncoder.encodeRegister(clientID: config.clientIDBase + UInt64(firstClient + c),
                                                    frameSize: config.registrationSize, into: scratch)
                engine.send(clients[c].connection, UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
            } else {
                engine.send(clients[c].connection, UnsafeRawBufferPointer(firstMessage))
            }
            wheel.wake(c, at: now + config.requestTimeoutNanoseconds)
        } else {
            becomeActive(c, now: now)
        }
    }

    private func registered(_ c: Int, now: Int64) {
        report.registerLatency.record(from: UInt64(clients[c].registerSentAt), to: UInt64(now))
        clients[c].registerMicroseconds = (now - clients[c].registerSentAt) / 1000
        becomeActive(c, now: now)
    }

    private func becomeActive(_ c: Int, now: Int64) {
        clients[c].stage = .active
        clients[c].consecutiveFailures = 0
        wheel.cancel(c)
        guard !stopping else { return }
        switch config.pacing {
        case .closedLoop(let pipeline):
            for _ in 0..<max(pipeline, 1) { sendRequest(c, intended: now) }
            scheduleActive(c)
        case .openLoop(let interval):
            sendRequest(c, intended: now)
            clients[c].nextSendAt = now + interval
            scheduleActive(c)
        case .silent:
            break  // connected; nothing to send, nothing to wait for
        }
    }

    // MARK: Requests

    @inline(__always)
    private func sendRequest(_ c: Int, intended: Int64) {
        let inFlight = Int(clients[c].inFlight)
        guard inFlight < maxInFlight else { return }
        sendTimes[c * maxInFlight + (Int(clients[c].oldest) + inFlight) % maxInFlight] = intended
        clients[c].inFlight += 1
        if config.wireProtocol == .ringstorm {
            let n = FrameEncoder.encodeRequest(sequence: clients[c].sequence, timestamp: UInt64(intended),
                                               payloadSize: config.messageSize, into: scratch)
            engine.send(clients[c].connection, UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
        } else {
            engine.send(clients[c].connection, UnsafeRawBufferPointer(echoMessage))
        }
        clients[c].sequence &+= 1
        report.requestsSent += 1
    }

    /// The oldest request in flight was answered at `now`: returns its send time.
    @inline(__always)
    private func answerOldest(_ c: Int, now: Int64) {
        let sentAt = sendTimes[c * maxInFlight + Int(clients[c].oldest)]
        clients[c].oldest = Int32((Int(clients[c].oldest) + 1) % maxInFlight)
        clients[c].inFlight -= 1
        clients[c].answered += 1
        report.requestsAnswered += 1
        report.requestLatency.record(from: UInt64(sentAt), to: UInt64(now))
        if case .closedLoop = config.pacing, !stopping { sendRequest(c, intended: now) }
    }

    @inline(__always)
    private func oldestSendTime(_ c: Int) -> Int64 { sendTimes[c * maxInFlight + Int(clients[c].oldest)] }

    /// Asks the wheel for the next thing an active client must do: its next open-loop send or its
    /// oldest request's timeout.
    @inline(__always)
    private func scheduleActive(_ c: Int) {
        var at = Int64.max
        if case .openLoop = config.pacing { at = clients[c].nextSendAt }
        if clients[c].inFlight > 0 { at = min(at, oldestSendTime(c) + config.requestTimeoutNanoseconds) }
        if at != .max { wheel.wake(c, at: at) }
    }

    /// The wheel woke client `c`.
    private func wake(_ c: Int, now: Int64) {
        switch clients[c].stage {
        case .backingOff:
            clients[c].stage = .queued
            queue.push(c)
        case .registering:
            guard !stopping else { return }
            if now - clients[c].registerSentAt >= config.requestTimeoutNanoseconds {
                fail(c, phase: .register, .responseTimeout, mode: .abortive)
            } else {
                wheel.wake(c, at: clients[c].registerSentAt + config.requestTimeoutNanoseconds)
            }
        case .active:
            // After the deadline nothing is sent and a late answer is not a failure: the drain time ends it.
            guard !stopping else { return }
            if clients[c].inFlight > 0 && now - oldestSendTime(c) >= config.requestTimeoutNanoseconds {
                fail(c, phase: .request, .responseTimeout, mode: .abortive)
                return
            }
            if case .openLoop(let interval) = config.pacing {
                // Every intended send time that has passed gets its request now, stamped with the
                // intended time: a stall shows in the latencies instead of thinning the requests.
                while clients[c].nextSendAt <= now && Int(clients[c].inFlight) < maxInFlight {
                    sendRequest(c, intended: clients[c].nextSendAt)
                    clients[c].nextSendAt += interval
                }
                if clients[c].nextSendAt <= now {
                    // The ring is full: skip the missed sends; the oldest request times out first.
                    clients[c].nextSendAt = now + interval
                }
            }
            scheduleActive(c)
        case .queued, .connecting, .closing, .done:
            break
        }
    }

    // MARK: Receiving

    @inline(__always)
    private func received(_ c: Int, _ bytes: UnsafeRawBufferPointer) {
        let stage = clients[c].stage
        guard stage == .registering || stage == .active else { return }
        if case .silent = config.pacing { return }  // a silent client ignores what it is sent
        let now = monotonicNanoseconds()
        if config.wireProtocol == .echo {
            receivedEcho(c, bytes.count, now: now)
        } else {
            receivedFrames(c, bytes, now: now)
        }
        if stopping { finishIfAnswered(c, now: now) }
    }

    private func receivedEcho(_ c: Int, _ count: Int, now: Int64) {
        var remaining = count
        if clients[c].stage == .registering {
            let need = config.firstMessageSize - clients[c].echoedBytes
            let take = min(need, remaining)
            clients[c].echoedBytes += take
            remaining -= take
            guard clients[c].echoedBytes == config.firstMessageSize else { return }
            clients[c].echoedBytes = 0
            if remaining > 0 {
                // Bytes beyond the first message before any request was sent: not an echo.
                fail(c, phase: .register, .protocolError, mode: .abortive)
                return
            }
            registered(c, now: now)
            return
        }
        let total = clients[c].echoedBytes + remaining
        let messages = total / config.messageSize
        clients[c].echoedBytes = total % config.messageSize
        if messages > Int(clients[c].inFlight) || (messages == Int(clients[c].inFlight) && clients[c].echoedBytes > 0) {
            // More came back than was sent.
            fail(c, phase: .request, .protocolError, mode: .abortive)
            return
        }
        for _ in 0..<messages { answerOldest(c, now: now) }
        if messages > 0 { scheduleActive(c) }
    }

    private func receivedFrames(_ c: Int, _ bytes: UnsafeRawBufferPointer, now: Int64) {
        let expectedID = config.clientIDBase + UInt64(firstClient + c)
        var answered = false
        do throws(ProtocolError) {
            try decoders[c].feed(bytes) { frame throws(ProtocolError) in
                switch frame {
                case .registered(let id):
                    guard clients[c].stage == .registering, id == expectedID else { throw .unexpectedType(.registered) }
                    registered(c, now: now)
                case .response(let sequence, _, _):
                    let inFlight = UInt64(clients[c].inFlight)
                    guard clients[c].stage == .active, inFlight > 0, sequence == clients[c].sequence &- inFlight else {
                        throw .unexpectedType(.response)
                    }
                    answerOldest(c, now: now)
                    answered = true
                case .error(let code, _):
                    // The server's reason, kept beside the protocol_error it ends in.
                    report.serverErrors[ErrorCode(rawValue: code)?.description ?? "code_\(code)", default: 0] += 1
                    throw .unexpectedType(.error)
                case .register, .request:
                    throw .unexpectedType(frame.type)
                }
            }
        } catch {
            fail(c, phase: phase(of: c), .protocolError, mode: .abortive)
            return
        }
        if answered { scheduleActive(c) }
    }

    // MARK: Endings

    @inline(__always)
    private func phase(of c: Int) -> Phase {
        switch clients[c].stage {
        case .connecting, .queued, .backingOff: .connect
        case .registering: .register
        case .active: clients[c].inFlight > 0 ? .request : .idle
        case .closing, .done: .idle
        }
    }

    /// A connection failed in `phase`: count it, log it, close it (`mode` nil: the engine already has).
    private func fail(_ c: Int, phase: Phase, _ outcome: FailureOutcome, mode: CloseMode?) {
        let now = monotonicNanoseconds()
        report.outcomes.record(outcome, in: phase)
        if stopping && awaitsAnswers(c) { finishing -= 1 }
        if clients[c].stage == .registering || clients[c].stage == .active { open -= 1 }
        logLifecycle(c, phase: phase, outcome: outcome.name, now: now)
        wheel.cancel(c)
        clients[c].consecutiveFailures += 1
        if let mode {
            clients[c].stage = .closing
            engine.close(clients[c].connection, mode: mode)
        } else {
            clients[c].stage = .closing
            clients[c].connection = .none
            lifecycleEnded(c, now: now)
        }
    }

    /// The connection is gone: reconnect after a backoff, or stop.
    private func lifecycleEnded(_ c: Int, now: Int64) {
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

    private func logLifecycle(_ c: Int, phase: Phase, outcome: String, now: Int64) {
        guard let log else { return }
        log.append(ConnectionRecord(
            id: firstClient + c, attempt: Int(clients[c].attempt), source: source(of: c),
            connectMicroseconds: clients[c].connectMicroseconds, registerMicroseconds: clients[c].registerMicroseconds,
            requestsAnswered: clients[c].answered, phase: phase, outcome: outcome,
            lifetimeMicroseconds: (now - clients[c].connectStartedAt) / 1000))
    }
}
