import CURing
import Glibc

/// The epoll driver: edge-triggered, non-blocking, readiness-based, behind the same interface as
/// `UringDriver` so every workload can be compared on both.
///
/// - Each socket is registered once (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`); no `epoll_ctl` after.
/// - Accept until EAGAIN; EMFILE/ENFILE pause the listener until `resumeAccepting`.
/// - Receive until the socket is drained: a short read means the queue was empty, so the EAGAIN
///   probe is skipped (new data raises a new edge). A connection that keeps delivering is put back
///   on a ready list after a bounded number of reads so others are not starved.
/// - Sends are queued and flushed when `poll` runs; what the kernel does not take waits for EPOLLOUT.
///   A connection whose unsent bytes exceed the bound is not read until they drain to half of it.
/// - Timers (the caller's and connect deadlines) set the `epoll_pwait2` timeout, to the nanosecond.
///
/// Everything that does not depend on epoll is the `EngineCore`'s.
public final class EpollDriver: EngineDriver {
    public static var backend: Backend { .epoll }

    private let core: EngineCore
    /// The core's storage, held here too so the readiness path reaches it without an indirection.
    private let counters: Counters
    private let generations: FlatArray<UInt32>
    private let connections: FlatArray<Connection>

    private let epollFD: Int32
    private var connectDeadlines = TimerQueue()
    private let events: UnsafeMutablePointer<epoll_event>
    private let eventCapacity: Int32 = 1024
    private let readBuffer: UnsafeMutableRawPointer
    private let readBufferSize: Int

    /// The lists below are swapped with these while being worked through, so neither allocates.
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

    public init(core: EngineCore) throws(EngineError) {
        self.core = core
        counters = core.counters
        generations = core.generations
        connections = core.connections
        counters.record(.epollCreate)
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw EngineError("epoll_create1", .current) }
        epollFD = fd
        events = .allocate(capacity: Int(eventCapacity))
        // The thread's timer slack (50 µs by default) is added to every epoll wait: timers that should
        // fire within microseconds (an open-loop send) would fire 50 µs late. 1 µs for this thread.
        counters.record(.other)
        _ = curing_set_timer_slack(1_000)
        readBufferSize = max(core.configuration.receiveBufferSize, 64 * 1024)
        readBuffer = .allocate(byteCount: readBufferSize, alignment: 4096)
        core.stats.features += ["epoll_pwait2", "EPOLLET"]
    }

    deinit {
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

    // MARK: - EngineDriver

    public func startAccepting(_ listener: ListenerID) throws(EngineError) {
        let index = listener.index
        if case .failure(let e) = register(core.listeners[index].fd, tag: UserData(.accept, slot: UInt32(index), generation: 0),
                                           events: EPOLLIN.rawValue | EPOLLET.rawValue) {
            core.listeners[index].close(counters)
            core.listeners.removeLast()
            throw EngineError("epoll_ctl for the listener", e)
        }
        readyToAccept.append(index)
    }

    public func resumeAccepting(_ listener: ListenerID, waitForConnection: Bool) {
        // Edge-triggered: connections queued while paused raise no new edge, so accept at the next poll.
        readyToAccept.append(listener.index)
    }

    public func connect(_ id: ConnectionID, to destination: SocketAddress, deadline: Int64) throws(Errno) {
        let fd = connections[Int(id.slot)].fd
        if case .failure(let e) = register(fd, tag: UserData(.receive, slot: id.slot, generation: id.generation), events: Self.connectionEvents) {
            counters.close(fd)
            core.release(id.slot)
            throw e
        }
        switch counters.connect(fd, to: destination) {
        case .success:
            // Connected at once: report it at the next poll, as the io_uring backend would.
            finishConnect(id, error: nil, deferredOnly: true)
        case .failure(.inProgress):
            if deadline > 0 {
                connectDeadlines.schedule(at: deadline, token: UserData(.connect, slot: id.slot, generation: id.generation).rawValue)
            }
        case .failure(let e):
            finishConnect(id, error: e, deferredOnly: true)
        }
    }

    /// Write through: an idle connection sends at once rather than at the end of the batch, so the peer
    /// is not kept waiting while the rest of the batch is handled (same syscall count).
    @inline(__always)
    public func sendNow(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let i = Int(id.slot)
        guard connections[i].lifecycle == .open && connections[i].outbound.isEmpty else { return bytes }
        switch counters.send(connections[i].fd, from: bytes.baseAddress!, count: bytes.count) {
        case .success(let n):
            core.sentDirectly(n)
            return n == bytes.count ? nil : UnsafeRawBufferPointer(rebasing: bytes[n...])
        case .failure(.wouldBlock):
            return bytes
        case .failure(let e):
            deferred.append(core.sendFailed(id.slot, Outcome(e)))
            return nil
        }
    }

    /// Reading stops by itself: the read loop checks `read` before each receive.
    @inline(__always)
    public func pauseReceiving(_ id: ConnectionID) {}

    public func poll(timeoutNanoseconds: Int64?, _ handler: (Event) -> Void) throws(EngineError) -> Int {
        var handled = deliverDeferred(handler)
        handled += flushSends(handler)
        handled += runReadyLists(handler)
        handled += fireTimers(handler)
        let busy = handled > 0 || !readyToRead.isEmpty || !readyToAccept.isEmpty || !deferred.isEmpty
        var wait = busy ? 0 : core.waitNanoseconds(callerTimeout: timeoutNanoseconds)
        if let deadline = connectDeadlines.nextDeadline { wait = min(wait ?? .max, max(0, deadline - monotonicNanoseconds())) }
        counters.record(.epollWait)
        let n: Int32
        if let wait {
            var timeout = Self.kernelTimeout(wait)
            n = epoll_pwait2(epollFD, events, eventCapacity, &timeout, nil)
        } else {
            n = epoll_pwait2(epollFD, events, eventCapacity, nil, nil)
        }
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

    /// The timespec for a wait of `nanoseconds`, so that the kernel wakes us by then. `epoll_pwait2`
    /// sleeps with a slack of the larger of the thread's timer slack (1 µs: set in `init`) and 0.1% of the
    /// timeout, and on an idle CPU it wakes at the end of that slack: a 100 ms wait would end 100 µs
    /// late. A wait over 1 ms is therefore shortened by its 0.1%; the loop wakes that much early at
    /// worst, finds nothing due and waits the few microseconds left.
    static func kernelTimeout(_ nanoseconds: Int64) -> timespec {
        let wait = nanoseconds > 1_000_000 ? nanoseconds - nanoseconds / 1000 : nanoseconds
        return timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
    }

    // MARK: - Readiness

    private func ready(_ id: ConnectionID, mask: UInt32, _ handler: (Event) -> Void) {
        guard generations.isCurrent(id) else { return }
        let i = Int(id.slot)
        if connections[i].lifecycle == .connecting {
            let failed = mask & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
            guard failed || mask & EPOLLOUT.rawValue != 0 else { return }
            let code: Int32
            switch counters.pendingError(connections[i].fd) {
            case .success(let c): code = c
            case .failure(let e): code = e.rawValue
            }
            finishConnect(id, error: code == 0 ? nil : Errno(rawValue: code), deferredOnly: false, handler)
            guard generations.isCurrent(id), connections[i].isOpen else { return }
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
        while generations.isCurrent(id), connections[i].isOpen, connections[i].read == .reading {
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
                handler(core.readEnded(id.slot, .closedByPeer))
                return
            case .failure(.wouldBlock):
                return
            case .failure(let e):
                handler(core.readEnded(id.slot, Outcome(e)))
                return
            }
        }
    }

    private func acceptLoop(_ index: Int, _ handler: (Event) -> Void) {
        guard core.listeners.indices.contains(index) else { return }
        var accepted = 0
        while core.listeners[index].fd >= 0 && !core.listeners[index].paused {
            if accepted == acceptsPerWakeup { readyToAccept.append(index); return }
            switch counters.accept(core.listeners[index].fd) {
            case .success(let fd):
                accepted += 1
                guard let id = core.accepted(fd) else { continue }
                if case .failure(let e) = register(fd, tag: UserData(.receive, slot: id.slot, generation: id.generation), events: Self.connectionEvents) {
                    counters.close(fd)
                    core.release(id.slot)
                    core.stats.notes.append("epoll_ctl for an accepted socket: \(e)")
                    continue
                }
                handler(Event(.accepted, id, listener: ListenerID(index: index)))
            case .failure(.wouldBlock):
                return
            case .failure(let e):
                let event = core.acceptFailed(index, Outcome(e))
                handler(event)
                if event.outcome.pausesAccepting { return }
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
                core.release(id.slot)
                handler(Event(.connected, id, outcome))
            }
        } else {
            let event = core.connected(id.slot)
            if deferredOnly { deferred.append(event) } else { handler(event) }
        }
    }

    private func deliverDeferred(_ handler: (Event) -> Void) -> Int {
        guard !deferred.isEmpty else { return 0 }
        swap(&deferred, &deferredSpare)
        defer { deferredSpare.removeAll(keepingCapacity: true) }
        for event in deferredSpare {
            if generations.isCurrent(event.connection) && connections[Int(event.connection.slot)].lifecycle == .closed {
                core.release(event.connection.slot)  // only now may a new connection take the slot
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
            guard generations.isCurrent(id), connections[Int(id.slot)].lifecycle == .connecting else { continue }
            finishConnect(id, error: .timedOut, deferredOnly: false, handler)
            fired += 1
        }
        return fired + core.fireTimers(now: now, handler)
    }

    // MARK: - Sending and closing

    private func flushSends(_ handler: (Event) -> Void) -> Int {
        var failures = 0
        core.flushDirty { slot in
            if !flush(slot, handler) { failures += 1 }
        }
        return failures
    }

    /// Sends until the queue is empty or the kernel's buffer is full. False when the send failed.
    private func flush(_ slot: UInt32, _ handler: (Event) -> Void) -> Bool {
        let i = Int(slot)
        let id = ConnectionID(slot: slot, generation: generations[i])
        guard connections[i].isOpen else { return true }
        while let chunk = connections[i].outbound.nextChunk() {
            switch counters.send(connections[i].fd, from: chunk.baseAddress!, count: chunk.count) {
            case .success(let n):
                if core.sent(n, from: slot) { readyToRead.append(id) }
                if n < chunk.count { return true }
            case .failure(.wouldBlock):
                return true
            case .failure(let e):
                let draining = connections[i].lifecycle == .draining
                handler(core.sendFailed(slot, Outcome(e)))
                if draining && generations.isCurrent(id) && connections[i].lifecycle == .draining { beginClose(slot, mode: .orderly) }
                return false
            }
        }
        if connections[i].lifecycle == .draining { beginClose(slot, mode: .orderly) }
        return true
    }

    public func beginClose(_ slot: UInt32, mode: CloseMode) {
        core.prepareClose(slot, mode: mode)
        // Closing the only descriptor removes it from the epoll set: no epoll_ctl needed.
        closeDescriptorKeepingSlot(Int(slot))
        counters.record(.close, .success)
        deferred.append(Event(.closed, core.id(of: slot)))
    }

    private func closeDescriptorKeepingSlot(_ i: Int) {
        counters.close(connections[i].fd)
        connections[i].fd = -1
        connections[i].outbound.reset()
        connections[i].lifecycle = .closed
    }
}
