import RingStormEngine

/// When things happen: the tick and its wheel, the connect-rate token bucket, and when each request is
/// sent (closed loop: on each answer; open loop: at its intended time; silent: never).
extension LoadWorker {
    // MARK: The tick

    /// Runs every wake-up whose time has come (to the nanosecond: `DeadlineWheel`) and sets the engine
    /// timer for the earliest one left, so an open-loop send leaves at its intended time rather than at
    /// the next millisecond.
    func tick() {
        let now = monotonicNanoseconds()
        wheel.advance(to: now) { c in wake(c, now: now) }
        if !stopping { startConnections(now: now) }
        // Tick when something is due, not every millisecond: an idle or slow open-loop run would
        // otherwise cost a thousand wake-ups (and io_uring_enter calls) a second per thread.
        var next = wheel.nextDue() ?? .max
        if !stopping && !queue.isEmpty { next = min(next, pacer.nextWake(now: now)) }  // connect pacing
        next = min(next, now + 100_000_000)
        scheduleTick(at: max(next, now), now: now)
    }

    /// Brings the tick forward when a handler asked the wheel for an earlier wake-up than it is set for.
    @inline(__always)
    func tickForNewDeadlines(now: Int64) {
        let requested = wheel.takeEarliestRequest()
        if requested != .max { scheduleTick(at: requested, now: now) }
    }

    /// Sets the engine timer for `time`. The engine counts the delay from its own clock reading, so the
    /// delay is taken from a fresh one, not from `now`: a tick that sent for 30 µs (epoll writes through,
    /// and on loopback a write runs the peer's receive path too) would otherwise set the next send 30 µs
    /// late. One clock read per tick, not per request.
    func scheduleTick(at time: Int64, now: Int64) {
        guard time < tickAt else { return }
        tickAt = time
        tickToken = Self.tickTokenBit | (tickToken &+ 1) & (Self.tickTokenBit - 1)
        engine.schedule(afterNanoseconds: max(0, time - max(now, monotonicNanoseconds())), token: tickToken)
    }

    // MARK: Connect rate

    /// Starts the queued connects that are due by this worker's share of the rate (`ConnectPacer`).
    func startConnections(now: Int64) {
        guard !queue.isEmpty else {
            pacer.idle(now: now)
            return
        }
        let n = pacer.due(now: now, queued: queue.count)
        for _ in 0..<n {
            guard let c = queue.pop() else { break }
            startConnect(c, now: now)
        }
    }

    // MARK: Requests

    /// A connection is ready for requests: the first ones by the pacing.
    func startRequests(_ c: Int, now: Int64) {
        switch config.pacing {
        case .closedLoop(let pipeline):
            for _ in 0..<max(pipeline, 1) { sendRequest(c, intended: now, now: now) }
            scheduleActive(c)
        case .openLoop, .rate:
            // On the client's own point of the whole run's grid: evenly spaced with every other client's,
            // so connections established together do not send together.
            clients[c].nextSendAt = config.firstSendTime(client: firstClient + c, now: now) ?? now
            if clients[c].nextSendAt <= now {
                sendRequest(c, intended: now, now: now)
                clients[c].nextSendAt = now + (openLoopInterval ?? 1)
            }
            scheduleActive(c)
        case .silent:
            break  // connected; nothing to send, nothing to wait for
        }
    }

    /// Sends client `c`'s next request, stamped `intended`; `now` is the loop's clock reading (the
    /// tick's or the answer's), taken as the open loop's actual send time: io_uring hands the request to
    /// the kernel at the loop's next `io_uring_enter` anyway, so a clock read per send would cost a vDSO
    /// call per request and be no truer. epoll writes through in `engine.send`, whose call is timed
    /// (`timesSends`): that reading is its send time.
    @inline(__always)
    func sendRequest(_ c: Int, intended: Int64, now: Int64) {
        let inFlight = Int(clients[c].inFlight)
        guard inFlight < maxInFlight, !clients[c].peerCloses else { return }
        let unsent = engine.pendingBytes(clients[c].connection)
        if config.maxUnsentBytesPerConnection > 0 && unsent >= config.maxUnsentBytesPerConnection {
            // The server is not taking what was sent: hold back rather than queue without end.
            report.requests.heldBack += 1
            return
        }
        let index = c * maxInFlight + (Int(clients[c].oldest) + inFlight) % maxInFlight
        sendTimes[index] = intended
        clients[c].inFlight += 1
        let request = wire.request(sequence: clients[c].sequence, timestamp: intended, &wireStates[c])
        if unsent + request.count > report.requests.peakUnsentBytes { report.requests.peakUnsentBytes = unsent + request.count }
        var actual = now
        if timesSends {
            actual = monotonicNanoseconds()
            engine.send(clients[c].connection, request)
            sendCallNanoseconds += monotonicNanoseconds() - actual
        } else {
            engine.send(clients[c].connection, request)
        }
        if openLoopInterval != nil {
            // The generator's own lateness, apart from the server's.
            actualSendTimes[index] = actual
            tallies.sendLag.record(nanoseconds: actual - intended)
        }
        clients[c].sequence &+= 1
        report.requests.sent += 1
    }

    /// The oldest request in flight was answered at `now`.
    @inline(__always)
    func answerOldest(_ c: Int, now: Int64) {
        let index = c * maxInFlight + Int(clients[c].oldest)
        let sentAt = sendTimes[index]
        if openLoopInterval != nil { tallies.response.record(nanoseconds: now - actualSendTimes[index]) }
        clients[c].oldest = Int32((Int(clients[c].oldest) + 1) % maxInFlight)
        clients[c].inFlight -= 1
        clients[c].answered += 1
        report.requests.answered += 1
        tallies.request.record(nanoseconds: now - sentAt)
        if case .closedLoop = config.pacing, !stopping { sendRequest(c, intended: now, now: now) }
    }

    @inline(__always)
    func oldestSendTime(_ c: Int) -> Int64 { sendTimes[c * maxInFlight + Int(clients[c].oldest)] }

    /// Asks the wheel for the next thing an active client must do: its next open-loop send or its
    /// oldest request's timeout.
    @inline(__always)
    func scheduleActive(_ c: Int) {
        var at = Int64.max
        if openLoopInterval != nil { at = clients[c].nextSendAt }
        if clients[c].inFlight > 0 { at = min(at, oldestSendTime(c) + config.requestTimeoutNanoseconds) }
        if at != .max { wheel.wake(c, at: at) }
    }

    /// The wheel woke client `c`.
    func wake(_ c: Int, now: Int64) {
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
            if let interval = openLoopInterval {
                // Every intended send time that has passed gets its request now, stamped with the
                // intended time: a stall shows in the latencies instead of thinning the requests.
                while clients[c].nextSendAt <= now && Int(clients[c].inFlight) < maxInFlight {
                    sendRequest(c, intended: clients[c].nextSendAt, now: now)
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
}
