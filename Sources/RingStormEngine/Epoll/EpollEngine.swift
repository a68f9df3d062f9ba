import CURing
import Glibc

/// The epoll backend: edge-triggered, non-blocking, readiness-based, behind the same interface as
/// `UringEngine` so every workload can be compared on both.
///
/// - Each socket is registered once (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`); no `epoll_ctl` after.
/// - Accept until EAGAIN; EMFILE/ENFILE pause the listener until `resumeAccepting`.
/// - Receive until the socket is drained: a short read means the queue was empty, so the EAGAIN
///   probe is skipped (new data raises a new edge). A connection that keeps delivering is put back
///   on a ready list after a bounded number of reads so others are not starved.
/// - Sends are queued and flushed when `poll` runs; what the kernel does not take waits for EPOLLOUT.
///   A connection whose unsent bytes exceed the bound is not read until they drain.
/// - Timers (the caller's and connect deadlines) set the `epoll_wait` timeout.
public final class EpollEngine: NetworkEngine {
    public let backend = Backend.epoll

    private let epollFD: Int32
    private let configuration: EngineConfiguration
    private let counters = Counters()
    private var stats = EngineStatistics(backend: .epoll)
    private var slots: SlotAllocator
    private let generations: FlatArray<UInt32>
    private let connections: FlatArray<EpollConnection>
    private var listeners: [Listener] = []
    private var timers = TimerQueue()
    private var connectDeadlines = TimerQueue()

    private let events: UnsafeMutablePointer<epoll_event>
    private let eventCapacity: Int32 = 1024
    private let readBuffer: UnsafeMutableRawPointer
    private let readBufferSize: Int

    private var dirty: [UInt32] = []
    /// The lists above are swapped with these while being worked through, so neither allocates.
    private var dirtySpare: [UInt32] = []
    private var readSpare: [ConnectionID] = []
    private var acceptSpare: [Int] = []
    private var deferredSpare: [Event] = []
    /// Connections still readable after their read budget, and listeners to accept on again.
    private var readyToRead: [ConnectionID] = []
    private var readyToAccept: [Int] = []
    /// Results decided outside `poll` (immediate connect results, closes) delivered at the next `poll`.
    private var deferred: [Event] = []

    private let readsPerWakeup = 16
    private let acceptsPerWakeup = 256

    public init(configuration: EngineConfiguration = EngineConfiguration()) throws(EngineError) {
        self.configuration = configuration
        counters.record(.epollCreate)
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw EngineError("epoll_create1", .current) }
        epollFD = fd
        slots = SlotAllocator(capacity: configuration.maxConnections)
        generations = slots.generations
        connections = FlatArray(repeating: EpollConnection(), count: configuration.maxConnections)
        events = .allocate(capacity: Int(eventCapacity))
        readBufferSize = max(configuration.receiveBufferSize, 64 * 1024)
        readBuffer = .allocate(byteCount: readBufferSize, alignment: 4096)
    }

    deinit {
        for i in listeners.indices { listeners[i].close(counters) }
        for i in connections.indices {
            if connections[i].state != .free && connections[i].fd >= 0 { Glibc.close(connections[i].fd) }
            connections[i].outbound.deallocate()
        }
        connections.deallocate()
        slots.deallocate()
        counters.deallocate()
        Glibc.close(epollFD)
        events.deallocate()
        readBuffer.deallocate()
    }

    // MARK: - Registration

    private func register(_ fd: Int32, tag: UserData, events mask: UInt32) -> Result<Void, Errno> {
        var event = epoll_event()
        event.events = mask
        event.data.u64 = tag.rawValue
        return counters.call(.epollCtl) { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) }.map { _ in () }
    }

    private static let connectionEvents = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue

    // MARK: - NetworkEngine

    public func listen(on address: SocketAddress, backlog: Int32, reusePort: Bool) throws(EngineError) -> ListenerID {
        var listener = try Listener.open(on: address, backlog: backlog, reusePort: reusePort,
                                         noDelay: configuration.noDelay, syscalls: counters)
        let index = listeners.count
        if case .failure(let e) = register(listener.fd, tag: UserData(.accept, slot: UInt32(index), generation: 0),
                                           events: EPOLLIN.rawValue | EPOLLET.rawValue) {
            listener.close(counters)
            throw EngineError("epoll_ctl for the listener", e)
        }
        listeners.append(listener)
        readyToAccept.append(index)
        return ListenerID(index: index)
    }

    public func localAddress(of listener: ListenerID) -> SocketAddress? {
        listeners.address(of: listener)
    }

    public func resumeAccepting(_ listener: ListenerID, waitForConnection: Bool) {
        guard listeners.indices.contains(listener.index), listeners[listener.index].fd >= 0 else { return }
        listeners[listener.index].paused = false
        // Edge-triggered: connections queued while paused raise no new edge, so accept at the next poll.
        readyToAccept.append(listener.index)
    }

    public func shedOne(_ listener: ListenerID) -> Bool {
        listeners.shedOne(listener, counters)
    }

    public func connect(to destination: SocketAddress, from source: SocketAddress?, timeoutNanoseconds: Int64) throws(Errno) -> ConnectionID {
        let (fd, id) = try openClientConnection(to: destination, from: source, noDelay: configuration.noDelay, counters: counters,
                                                slots: &slots, statistics: &stats)
        let i = Int(id.slot)
        connections[i] = EpollConnection(fd: fd, state: .connecting, reuse: connections[i].outbound)
        if case .failure(let e) = register(fd, tag: UserData(.receive, slot: id.slot, generation: id.generation), events: Self.connectionEvents) {
            counters.close(fd)
            release(id.slot)
            throw e
        }
        switch counters.connect(fd, to: destination) {
        case .success:
            // Connected at once: report it at the next poll, as the io_uring backend would.
            finishConnect(id, error: nil, deferredOnly: true)
        case .failure(.inProgress):
            if timeoutNanoseconds > 0 {
                connectDeadlines.schedule(at: monotonicNanoseconds() + timeoutNanoseconds, token: UserData(.connect, slot: id.slot, generation: id.generation).rawValue)
            }
        case .failure(let e):
            finishConnect(id, error: e, deferredOnly: true)
        }
        return id
    }

    public func send(_ connection: ConnectionID, _ bytes: UnsafeRawBufferPointer) {
        guard generations.isCurrent(connection), !bytes.isEmpty else { return }
        let i = Int(connection.slot)
        guard connections[i].state == .open || connections[i].state == .connecting, !connections[i].closeAfterDrain else { return }
        var bytes = bytes
        if connections[i].state == .open && connections[i].outbound.isEmpty && !connections[i].sendFailed {
            // Write through: an idle connection sends at once rather than at the end of the batch, so the
            // peer is not kept waiting while the rest of the batch is handled (same syscall count).
            switch counters.send(connections[i].fd, from: bytes.baseAddress!, count: bytes.count) {
            case .success(let n):
                counters.record(.send, .success)
                counters.sent(n)
                if n == bytes.count { return }
                bytes = UnsafeRawBufferPointer(rebasing: bytes[n...])
            case .failure(.wouldBlock):
                break
            case .failure(let e):
                let outcome = Outcome(e)
                counters.record(.send, outcome)
                connections[i].sendFailed = true
                deferred.append(Event(.sendFailed, connection, outcome))
                return
            }
        }
        connections[i].outbound.append(bytes)
        if connections[i].outbound.count > configuration.maxPendingBytesPerConnection && !connections[i].backpressured {
            connections[i].backpressured = true
            stats.backpressurePauses += 1
        }
        if !connections[i].dirty {
            connections[i].dirty = true
            dirty.append(connection.slot)
        }
    }

    public func pendingBytes(_ connection: ConnectionID) -> Int {
        generations.isCurrent(connection) ? connections[Int(connection.slot)].outbound.count : 0
    }

    public func close(_ connection: ConnectionID, mode: CloseMode) {
        guard generations.isCurrent(connection) else { return }
        let i = Int(connection.slot)
        switch connections[i].state {
        case .free, .closed: return
        case .connecting: closeNow(connection, mode: .abortive)
        case .open:
            if mode == .orderly && !connections[i].outbound.isEmpty && !connections[i].sendFailed {
                connections[i].closeAfterDrain = true
            } else {
                closeNow(connection, mode: mode)
            }
        }
    }

    public func schedule(afterNanoseconds delay: Int64, token: UInt64) {
        timers.schedule(at: monotonicNanoseconds() + max(0, delay), token: token)
    }

    public var statistics: EngineStatistics {
        var s = stats
        counters.fill(&s)
        return s
    }
    public var openConnections: Int { slots.inUse }

    public func poll(timeoutNanoseconds: Int64?, _ handler: (Event) -> Void) throws(EngineError) -> Int {
        var handled = deliverDeferred(handler)
        handled += flushSends(handler)
        handled += runReadyLists(handler)
        handled += fireTimers(handler)
        let busy = handled > 0 || !readyToRead.isEmpty || !readyToAccept.isEmpty || !deferred.isEmpty
        let now = monotonicNanoseconds()
        var wait = busy ? 0 : timers.waitNanoseconds(now: now, callerTimeout: timeoutNanoseconds)
        if let deadline = connectDeadlines.nextDeadline { wait = min(wait ?? .max, max(0, deadline - now)) }
        let milliseconds: Int32 = wait.map { Int32(clamping: ($0 + 999_999) / 1_000_000) } ?? -1

        counters.record(.epollWait)
        let n = epoll_wait(epollFD, events, eventCapacity, milliseconds)
        if n < 0 {
            let error = Errno.current
            if error != .interrupted { throw EngineError("epoll_wait", error) }
        }
        for k in 0..<Int(max(n, 0)) {
            let tag = UserData(rawValue: events[k].data.u64)
            let mask = events[k].events
            if tag.operation == .accept {
                acceptLoop(Int(tag.slot), handler)
            } else {
                ready(tag.connection, mask: mask, handler)
            }
            handled += 1
        }
        handled += flushSends(handler)
        handled += fireTimers(handler)
        return handled
    }

    // MARK: - Readiness

    private func ready(_ id: ConnectionID, mask: UInt32, _ handler: (Event) -> Void) {
        guard generations.isCurrent(id) else { return }
        let i = Int(id.slot)
        if connections[i].state == .connecting {
            let failed = mask & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
            guard failed || mask & EPOLLOUT.rawValue != 0 else { return }
            let code: Int32
            switch counters.pendingError(connections[i].fd) {
            case .success(let c): code = c
            case .failure(let e): code = e.rawValue
            }
            finishConnect(id, error: code == 0 ? nil : Errno(rawValue: code), deferredOnly: false, handler)
            guard generations.isCurrent(id), connections[i].state == .open else { return }
        }
        if mask & EPOLLOUT.rawValue != 0 && !connections[i].outbound.isEmpty { _ = flush(id.slot, handler) }
        if mask & (EPOLLRDHUP.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            // FIN or RST came with (or after) data in this one edge: no later edge will announce it, so
            // the read loop must go on past a short read until it sees the end.
            connections[i].peerHungUp = true
        }
        if mask & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            readLoop(id, handler)
        }
    }

    private func readLoop(_ id: ConnectionID, _ handler: (Event) -> Void) {
        let i = Int(id.slot)
        var reads = 0
        while generations.isCurrent(id), connections[i].state == .open, !connections[i].readEnded, !connections[i].backpressured {
            if reads == readsPerWakeup { readyToRead.append(id); return }
            reads += 1
            switch counters.receive(connections[i].fd, into: readBuffer, count: readBufferSize) {
            case .success(let n) where n > 0:
                counters.record(.receive, .success)
                counters.received(n)
                handler(Event(.received, id, bytes: UnsafeRawBufferPointer(start: readBuffer, count: n)))
                // A short read drained the socket; the next arrival raises a new edge.
                if n < readBufferSize && !connections[i].peerHungUp { return }
            case .success:
                counters.record(.receive, .closedByPeer)
                connections[i].readEnded = true
                handler(Event(.readEnded, id, .closedByPeer))
                return
            case .failure(.wouldBlock):
                return
            case .failure(let e):
                let outcome = Outcome(e)
                counters.record(.receive, outcome)
                connections[i].readEnded = true
                handler(Event(.readEnded, id, outcome))
                return
            }
        }
    }

    private func acceptLoop(_ index: Int, _ handler: (Event) -> Void) {
        guard listeners.indices.contains(index) else { return }
        let listener = ListenerID(index: index)
        var accepted = 0
        while listeners[index].fd >= 0 && !listeners[index].paused {
            if accepted == acceptsPerWakeup { readyToAccept.append(index); return }
            switch counters.accept(listeners[index].fd) {
            case .success(let fd):
                accepted += 1
                counters.record(.accept, .success)
                guard let id = slots.allocate() else {
                    counters.close(fd)
                    stats.slotExhaustions += 1
                    continue
                }
                let i = Int(id.slot)
                connections[i] = EpollConnection(fd: fd, state: .open, reuse: connections[i].outbound)
                if case .failure(let e) = register(fd, tag: UserData(.receive, slot: id.slot, generation: id.generation), events: Self.connectionEvents) {
                    counters.close(fd)
                    release(id.slot)
                    stats.notes.append("epoll_ctl for an accepted socket: \(e)")
                    continue
                }
                handler(Event(.accepted, id, listener: listener))
            case .failure(.wouldBlock):
                return
            case .failure(let e):
                let outcome = Outcome(e)
                counters.record(.accept, outcome)
                if outcome.pausesAccepting { listeners[index].paused = true }
                handler(Event(.acceptFailed, .none, outcome, listener: listener))
                if outcome.pausesAccepting { return }
            }
        }
    }

    private func finishConnect(_ id: ConnectionID, error: Errno?, deferredOnly: Bool, _ handler: (Event) -> Void = { _ in }) {
        let i = Int(id.slot)
        if let error {
            let outcome = Outcome(error)
            counters.record(.connect, outcome)
            if deferredOnly {
                closeDescriptorKeepingSlot(i)
                deferred.append(Event(.connected, id, outcome))
            } else {
                counters.close(connections[i].fd)
                release(id.slot)
                handler(Event(.connected, id, outcome))
            }
        } else {
            counters.record(.connect, .success)
            connections[i].state = .open
            if !connections[i].outbound.isEmpty && !connections[i].dirty {
                connections[i].dirty = true
                dirty.append(id.slot)
            }
            emit(Event(.connected, id), deferredOnly: deferredOnly, handler)
        }
    }

    private func emit(_ event: Event, deferredOnly: Bool, _ handler: (Event) -> Void) {
        if deferredOnly { deferred.append(event) } else { handler(event) }
    }

    private func deliverDeferred(_ handler: (Event) -> Void) -> Int {
        guard !deferred.isEmpty else { return 0 }
        swap(&deferred, &deferredSpare)
        defer { deferredSpare.removeAll(keepingCapacity: true) }
        for event in deferredSpare {
            if generations.isCurrent(event.connection) && connections[Int(event.connection.slot)].state == .closed {
                release(event.connection.slot)  // only now may a new connection take the slot
            }
            handler(event)
            // A connection that connected at once may already have data waiting: no edge will say so.
            if event.kind == .connected && event.outcome == .success && generations.isCurrent(event.connection) {
                readyToRead.append(event.connection)
            }
        }
        return deferredSpare.count
    }

    private func runReadyLists(_ handler: (Event) -> Void) -> Int {
        var handled = 0
        if !readyToAccept.isEmpty {
            swap(&readyToAccept, &acceptSpare)
            for index in acceptSpare { acceptLoop(index, handler); handled += 1 }
            acceptSpare.removeAll(keepingCapacity: true)
        }
        if !readyToRead.isEmpty {
            swap(&readyToRead, &readSpare)
            for id in readSpare { readLoop(id, handler); handled += 1 }
            readSpare.removeAll(keepingCapacity: true)
        }
        return handled
    }

    private func fireTimers(_ handler: (Event) -> Void) -> Int {
        let now = monotonicNanoseconds()
        var fired = 0
        while let token = connectDeadlines.popExpired(now: now) {
            let id = UserData(rawValue: token).connection
            guard generations.isCurrent(id), connections[Int(id.slot)].state == .connecting else { continue }
            finishConnect(id, error: .timedOut, deferredOnly: false, handler)
            fired += 1
        }
        while let token = timers.popExpired(now: now) {
            handler(Event(.timer, .none, token: token))
            fired += 1
        }
        return fired
    }

    // MARK: - Sending and closing

    private func flushSends(_ handler: (Event) -> Void) -> Int {
        guard !dirty.isEmpty else { return 0 }
        swap(&dirty, &dirtySpare)
        defer { dirtySpare.removeAll(keepingCapacity: true) }
        var failures = 0
        for slot in dirtySpare {
            connections[Int(slot)].dirty = false
            if !flush(slot, handler) { failures += 1 }
        }
        return failures
    }

    /// Sends until the queue is empty or the kernel's buffer is full. False when the send failed.
    private func flush(_ slot: UInt32, _ handler: (Event) -> Void) -> Bool {
        let i = Int(slot)
        let id = ConnectionID(slot: slot, generation: generations[i])
        guard connections[i].state == .open else { return true }
        while let chunk = connections[i].outbound.nextChunk() {
            switch counters.send(connections[i].fd, from: chunk.baseAddress!, count: chunk.count) {
            case .success(let n):
                counters.record(.send, .success)
                counters.sent(n)
                connections[i].outbound.consume(n)
                if n < chunk.count { return true }
            case .failure(.wouldBlock):
                return true
            case .failure(let e):
                let outcome = Outcome(e)
                counters.record(.send, outcome)
                connections[i].sendFailed = true
                connections[i].outbound.reset()
                let closing = connections[i].closeAfterDrain
                handler(Event(.sendFailed, id, outcome))
                if closing && generations.isCurrent(id) { closeNow(id, mode: .orderly) }
                return false
            }
        }
        if connections[i].backpressured {
            connections[i].backpressured = false
            readyToRead.append(id)
        }
        if connections[i].closeAfterDrain { closeNow(id, mode: .orderly) }
        return true
    }

    private func closeNow(_ id: ConnectionID, mode: CloseMode) {
        let i = Int(id.slot)
        if mode == .abortive { _ = counters.setAbortiveClose(connections[i].fd) }
        // Closing the only descriptor removes it from the epoll set: no epoll_ctl needed.
        closeDescriptorKeepingSlot(i)
        counters.record(.close, .success)
        deferred.append(Event(.closed, id))
    }

    private func closeDescriptorKeepingSlot(_ i: Int) {
        counters.close(connections[i].fd)
        connections[i].fd = -1
        connections[i].outbound.reset()
        connections[i].state = .closed
    }

    private func release(_ slot: UInt32) {
        let i = Int(slot)
        connections[i].outbound.reset()
        connections[i].state = .free
        connections[i].fd = -1
        slots.release(slot)
    }
}

/// Per-connection state of the epoll backend, one element of a flat array indexed by slot.
struct EpollConnection {
    /// `closed`: the descriptor is closed but the slot stays taken until the caller has been handed the
    /// `.closed` (or failed `.connected`) event, so a new connection cannot take the slot first and be
    /// mistaken for the old one.
    enum State: UInt8 { case free, connecting, open, closed }

    var fd: Int32 = -1
    var state: State = .free
    var readEnded = false
    var backpressured = false
    var sendFailed = false
    var closeAfterDrain = false
    var peerHungUp = false
    var dirty = false
    var outbound = OutboundBuffer()

    init() {}

    init(fd: Int32, state: State, reuse outbound: OutboundBuffer) {
        self.fd = fd
        self.state = state
        self.outbound = outbound
    }
}
