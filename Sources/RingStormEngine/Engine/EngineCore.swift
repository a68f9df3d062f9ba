import CURing
import Glibc

/// Everything an engine keeps that does not depend on the kernel interface: slots and generations,
/// per-connection state, listeners and shedding, counters and statistics, timers, send queues and
/// backpressure, and the decisions of the close sequence. A driver (`UringDriver`, `EpollDriver`)
/// holds only how it arms, submits and reaps, and works on this storage in place.
///
/// A final class shared by the engine and its driver: storage is reached through `let` references and
/// flat arrays (no exclusivity or uniqueness checks per access), and every method is a direct call.
/// Public only as an opaque name in `EngineDriver`'s requirements; its members are the package's.
public final class EngineCore {
    package let configuration: EngineConfiguration
    package let counters = Counters()
    package var stats: EngineStatistics
    package var slots: SlotAllocator
    package let generations: FlatArray<UInt32>
    package let connections: FlatArray<Connection>
    package var listeners: [Listener] = []
    /// `IP_LOCAL_PORT_RANGE`'s value for client sockets (0: none, or the kernel refused it once).
    private var localPortRange: UInt32 = 0
    private var timers = TimerQueue()
    /// Connections with queued bytes to send at the next flush, and the list swapped in while it runs
    /// (a handler called during the flush may queue more), so neither allocates.
    private var dirty: [UInt32] = []
    private var dirtySpare: [UInt32] = []
    /// Draining connections by close deadline. Every close gets the same timeout, so appending keeps
    /// the list in deadline order and the sweep looks only at the front (`drainHead`): no timer per
    /// connection. An entry whose connection finished draining is skipped when reached; the list is
    /// compacted when it outgrows the slots, so it holds at most about twice `maxConnections`.
    private var drainDeadlines: [DrainDeadline] = []
    private var drainHead = 0
    /// Set while `expireDrains` walks the list: a handler that starts another drain then only appends.
    private var expiringDrains = false

    package init(backend: Backend, configuration: EngineConfiguration) {
        self.configuration = configuration
        localPortRange = LocalPortRange.optionValue(configuration.localPortRange)
        stats = EngineStatistics(backend: backend)
        if localPortRange != 0 { stats.features.append("IP_LOCAL_PORT_RANGE") }
        slots = SlotAllocator(capacity: configuration.maxConnections)
        generations = slots.generations
        connections = FlatArray(repeating: Connection(), count: configuration.maxConnections)
    }

    deinit {
        for i in listeners.indices { listeners[i].close(counters) }
        for i in connections.indices {
            // A direct descriptor is the ring's: closed with the ring (the driver's deinit).
            if connections[i].lifecycle != .free && connections[i].fd >= 0 && !connections[i].direct { Glibc.close(connections[i].fd) }
            connections[i].outbound.deallocate()
        }
        connections.deallocate()
        slots.deallocate()
        counters.deallocate()
    }

    @inline(__always)
    package func isCurrent(_ id: ConnectionID) -> Bool { generations.isCurrent(id) }

    @inline(__always)
    package func id(of slot: UInt32) -> ConnectionID { ConnectionID(slot: slot, generation: generations[Int(slot)]) }

    // MARK: - Listeners

    /// Opens a listening socket; the driver arms or registers it, then `add`s it.
    package func openListener(on address: SocketAddress, backlog: Int32, reusePort: Bool) throws(EngineError) -> Listener {
        try Listener.open(on: address, backlog: backlog, reusePort: reusePort, noDelay: configuration.noDelay, syscalls: counters)
    }

    package func add(_ listener: Listener) -> ListenerID {
        listeners.append(listener)
        return ListenerID(index: listeners.count - 1)
    }

    package func localAddress(of listener: ListenerID) -> SocketAddress? {
        listeners.indices.contains(listener.index) ? listeners[listener.index].address : nil
    }

    @inline(__always)
    package func isListening(_ index: Int) -> Bool { listeners.indices.contains(index) && listeners[index].fd >= 0 }

    /// Unpauses a listener; false if it is not (or no longer) listening.
    package func unpause(_ listener: ListenerID) -> Bool {
        guard isListening(listener.index) else { return false }
        listeners[listener.index].paused = false
        return true
    }

    /// One round of the reserve-descriptor trick on `listener`, counted as an accept when it shed one.
    package func shedOne(_ listener: ListenerID) -> Bool {
        guard listeners.indices.contains(listener.index) else { return false }
        let shed = listeners[listener.index].shedOne(counters)
        if shed { counters.record(.accept, .success) }
        return shed
    }

    /// An accepted descriptor takes a slot and is open; out of slots it is closed at once (nil). A
    /// `direct` descriptor (an index in the io_uring driver's file table) is left for the driver to close.
    @inline(__always)
    package func accepted(_ fd: Int32, direct: Bool = false) -> ConnectionID? {
        counters.record(.accept, .success)
        guard let id = slots.allocate() else {
            if !direct { counters.close(fd) }
            stats.slotExhaustions += 1
            return nil
        }
        let i = Int(id.slot)
        connections[i] = Connection(fd: fd, lifecycle: .open, reuse: connections[i].outbound, direct: direct)
        return id
    }

    /// Counts a failed accept; resource exhaustion pauses the listener until the caller resumes it.
    package func acceptFailed(_ index: Int, _ outcome: Outcome) -> Event {
        counters.record(.accept, outcome)
        if outcome.pausesAccepting { listeners[index].paused = true }
        return Event(.acceptFailed, .none, outcome, listener: ListenerID(index: index))
    }

    // MARK: - Connect

    /// The start of every connect: the socket (bound to `source` if given) and a slot for it, connecting.
    /// Out of slots, the socket is closed and EMFILE thrown, as if the descriptor table itself were full.
    package func openClient(to destination: SocketAddress, from source: SocketAddress?) throws(Errno) -> ConnectionID {
        var refused: Errno?
        let fd = try openClientSocket(to: destination, from: source, noDelay: configuration.noDelay,
                                      portRange: localPortRange, rangeRefused: &refused, syscalls: counters)
        if let refused {
            localPortRange = 0
            stats.features.removeAll { $0 == "IP_LOCAL_PORT_RANGE" }
            stats.notes.append("IP_LOCAL_PORT_RANGE refused (\(refused.name)): the kernel (before 6.3) searches the whole ephemeral port range")
        }
        guard let id = slots.allocate() else {
            counters.close(fd)
            stats.slotExhaustions += 1
            throw Errno.tooManyOpenFiles
        }
        let i = Int(id.slot)
        connections[i] = Connection(fd: fd, lifecycle: .connecting, reuse: connections[i].outbound)
        return id
    }

    /// The connect succeeded: open, and what was queued meanwhile goes out at the next flush.
    package func connected(_ slot: UInt32) -> Event {
        counters.record(.connect, .success)
        connections[Int(slot)].lifecycle = .open
        if !connections[Int(slot)].outbound.isEmpty { markDirty(slot) }
        return Event(.connected, id(of: slot))
    }

    // MARK: - Sending and backpressure

    /// Whether `send` takes bytes for the connection: connecting or open, not draining, no failed send.
    @inline(__always)
    package func acceptsSends(_ id: ConnectionID) -> Bool {
        guard isCurrent(id) else { return false }
        let c = connections[Int(id.slot)]
        return (c.lifecycle == .open || c.lifecycle == .connecting) && c.send != .failed
    }

    /// Queues bytes; true when this crossed the bound and reading must pause.
    @inline(__always)
    package func enqueue(_ bytes: UnsafeRawBufferPointer, for slot: UInt32) -> Bool {
        let i = Int(slot)
        connections[i].outbound.append(bytes)
        markDirty(slot)
        guard connections[i].outbound.count > configuration.maxPendingBytesPerConnection, connections[i].read == .reading else { return false }
        connections[i].read = .backpressured
        stats.backpressurePauses += 1
        return true
    }

    @inline(__always)
    package func markDirty(_ slot: UInt32) {
        if !connections[Int(slot)].queuedForFlush {
            connections[Int(slot)].queuedForFlush = true
            dirty.append(slot)
        }
    }

    /// Hands each connection with queued bytes to `body`, once.
    @inline(__always)
    package func flushDirty(_ body: (UInt32) -> Void) {
        guard !dirty.isEmpty else { return }
        swap(&dirty, &dirtySpare)
        for slot in dirtySpare {
            connections[Int(slot)].queuedForFlush = false
            body(slot)
        }
        dirtySpare.removeAll(keepingCapacity: true)
    }

    /// Counts bytes the kernel took without their having been queued (a write-through).
    @inline(__always)
    package func sentDirectly(_ n: Int) {
        counters.record(.send, .success)
        counters.sent(n)
    }

    /// The kernel took `n` queued bytes. True when backpressure just ended (down to half the bound), so
    /// reading resumes.
    @inline(__always)
    package func sent(_ n: Int, from slot: UInt32) -> Bool {
        let i = Int(slot)
        sentDirectly(n)
        connections[i].outbound.consume(n)
        guard connections[i].read == .backpressured,
              connections[i].outbound.count <= configuration.maxPendingBytesPerConnection / 2 else { return false }
        connections[i].read = .reading
        return true
    }

    /// A send failed (not by our own cancel): counted, the queue dropped, later sends ignored.
    package func sendFailed(_ slot: UInt32, _ outcome: Outcome) -> Event {
        counters.record(.send, outcome)
        connections[Int(slot)].send = .failed
        connections[Int(slot)].outbound.reset()
        return Event(.sendFailed, id(of: slot), outcome)
    }

    /// The receive direction ended with `outcome` (FIN, RST, an error).
    @inline(__always)
    package func readEnded(_ slot: UInt32, _ outcome: Outcome) -> Event {
        counters.record(.receive, outcome)
        connections[Int(slot)].read = .ended
        return Event(.readEnded, id(of: slot), outcome)
    }

    package func pendingBytes(_ id: ConnectionID) -> Int {
        isCurrent(id) ? connections[Int(id.slot)].outbound.count : 0
    }

    // MARK: - Closing

    /// What `close` does now: nil when nothing (already closing, or an orderly close waiting for the
    /// queue to drain), else the mode to start closing with (a connect is always aborted).
    package func closeRequested(_ id: ConnectionID, mode: CloseMode) -> CloseMode? {
        guard isCurrent(id) else { return nil }
        let i = Int(id.slot)
        switch connections[i].lifecycle {
        case .free, .closing, .closed: return nil
        case .connecting: return .abortive
        case .open, .draining:
            if mode == .orderly && !connections[i].outbound.isEmpty && connections[i].send != .failed {
                if connections[i].lifecycle == .open { startDraining(id) }
                return nil
            }
            return mode
        }
    }

    /// Open → draining: no more reads, and the close deadline starts.
    private func startDraining(_ id: ConnectionID) {
        let i = Int(id.slot)
        connections[i].lifecycle = .draining
        connections[i].read = .stopped
        let timeout = configuration.closeTimeoutNanoseconds
        guard timeout > 0 else { return }
        if !expiringDrains && drainDeadlines.count - drainHead >= 2 * max(configuration.maxConnections, 1) { compactDrainDeadlines() }
        drainDeadlines.append(DrainDeadline(slot: id.slot, generation: id.generation, deadline: monotonicNanoseconds() + timeout))
    }

    /// Drops the entries already passed and those of connections no longer draining.
    private func compactDrainDeadlines() {
        var kept: [DrainDeadline] = []
        kept.reserveCapacity(drainDeadlines.count - drainHead)
        for entry in drainDeadlines[drainHead...] where isDraining(entry) { kept.append(entry) }
        drainDeadlines = kept
        drainHead = 0
    }

    @inline(__always)
    private func isDraining(_ entry: DrainDeadline) -> Bool {
        generations[Int(entry.slot)] == entry.generation && connections[Int(entry.slot)].lifecycle == .draining
    }

    /// Whether a close deadline may be due (a cheap test for every poll).
    @inline(__always)
    package var hasDrainDeadlines: Bool { drainHead < drainDeadlines.count }

    /// Every draining connection whose close deadline passed by `now`: counted as `drainTimeout` (the
    /// send's outcome), handed to `abort` (the driver's abortive close) and returned as `.sendFailed`
    /// events for the caller, who asked for the close and will next see `.closed`.
    package func expireDrains(now: Int64, _ abort: (UInt32) -> Void, _ handler: (Event) -> Void) {
        expiringDrains = true
        defer { expiringDrains = false }
        while drainHead < drainDeadlines.count {
            let entry = drainDeadlines[drainHead]
            if isDraining(entry) {
                guard entry.deadline <= now else { break }
                counters.record(.send, .drainTimeout)
                stats.drainTimeouts += 1
                abort(entry.slot)
                handler(Event(.sendFailed, ConnectionID(slot: entry.slot, generation: entry.generation), .drainTimeout))
            }
            drainHead += 1
        }
        if drainHead == drainDeadlines.count {
            drainDeadlines.removeAll(keepingCapacity: true)
            drainHead = 0
        } else if drainHead > 1024 && drainHead * 2 > drainDeadlines.count {
            drainDeadlines.removeFirst(drainHead)
            drainHead = 0
        }
    }

    /// The first step of every close: RST requested if abortive (for a direct descriptor the io_uring
    /// driver asks through the ring instead).
    @inline(__always)
    package func prepareClose(_ slot: UInt32, mode: CloseMode) {
        if mode == .abortive && !connections[Int(slot)].direct { _ = counters.setAbortiveClose(connections[Int(slot)].fd) }
    }

    /// Frees the slot (its generation moves on, so the old identity is dead).
    package func release(_ slot: UInt32) {
        let i = Int(slot)
        connections[i].outbound.reset()
        connections[i].lifecycle = .free
        connections[i].fd = -1
        connections[i].direct = false
        slots.release(slot)
    }

    // MARK: - Timers and statistics

    package func schedule(afterNanoseconds delay: Int64, token: UInt64) {
        timers.schedule(at: monotonicNanoseconds() + max(0, delay), token: token)
    }

    package var hasTimers: Bool { !timers.isEmpty }

    /// How long a poll may block: until the next timer or the caller's timeout, whichever is sooner.
    /// With `spinNanoseconds` (the one place it is applied), a wait for a timer ends that much early,
    /// and a poll that finds the timer within it spins on the clock until the timer is due and then
    /// does not block: the timer fires on time instead of a wake-up's latency late.
    package func waitNanoseconds(callerTimeout: Int64?) -> Int64? {
        let now = monotonicNanoseconds()
        var wait = timers.waitNanoseconds(now: now, callerTimeout: callerTimeout)
        if hasDrainDeadlines { wait = min(wait ?? .max, max(0, drainDeadlines[drainHead].deadline - now)) }
        let spin = configuration.spinNanoseconds
        guard spin > 0, let w = wait, w > 0, let due = timers.nextDeadline, due - now <= w else { return wait }
        if w > spin { return w - spin }
        while monotonicNanoseconds() < due { curing_spin_hint() }
        return 0
    }

    /// Hands every timer due by `now` to `handler`; returns how many fired.
    package func fireTimers(now: Int64, _ handler: (Event) -> Void) -> Int {
        var fired = 0
        while let token = timers.popExpired(now: now) {
            handler(Event(.timer, .none, token: token))
            fired += 1
        }
        return fired
    }

    package var statistics: EngineStatistics {
        var s = stats
        counters.fill(&s)
        return s
    }
}

/// One draining connection's close deadline (monotonic nanoseconds).
struct DrainDeadline {
    let slot: UInt32
    let generation: UInt32
    let deadline: Int64
}

