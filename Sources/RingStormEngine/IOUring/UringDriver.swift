import CURing
import Glibc

/// The io_uring driver: completion-based, batched, one `io_uring_enter` for many operations.
///
/// - One multishot accept per listener, re-armed when a completion lacks `IORING_CQE_F_MORE`, paused on
///   resource exhaustion (EMFILE, ENFILE) until the caller resumes it.
/// - One multishot receive per connection into a provided buffer ring; each buffer goes back to the
///   ring as soon as the handler returns. ENOBUFS ends a multishot receive: the connection is re-armed
///   once buffers are back, in the order the connections ran dry, so none starves.
/// - Sends are queued per connection and submitted together when `poll` runs; one send per connection
///   is in flight at a time and a partial send is resubmitted before anything queued after it. With
///   `UringFeatures.zeroCopySends` a large one is a `SEND_ZC`, whose bytes stay put until its
///   notification (`OutboundBuffer` pins them; `ZeroCopyRetainer` past the connection's close).
/// - Close cancels what is pending (`IORING_OP_ASYNC_CANCEL` by user data) and closes through the ring
///   once the last completion for the connection is in.
/// - With direct descriptors (`UringFeatures.directDescriptors`, `DirectFileTable`) accepted sockets
///   live in the ring's file table: every operation on one names its index with `IOSQE_FIXED_FILE`, an
///   abortive close sets `SO_LINGER` through the ring, and the close is `close_direct`. A listener
///   paused while the table is full is re-armed only once an entry frees.
///
/// Completions are keyed by `UserData`: operation, slot generation and slot, so a completion that
/// arrives after its slot was reused is recognised and dropped (its buffer still goes back).
/// Everything that does not depend on io_uring is the `EngineCore`'s.
public final class UringDriver: EngineDriver {
    public static var backend: Backend { .uring }

    private let core: EngineCore
    /// The core's storage, held here too so the completion path reaches it without an indirection.
    private let configuration: EngineConfiguration
    private let counters: Counters
    private let generations: FlatArray<UInt32>
    private let connections: FlatArray<Connection>

    private var ring = io_uring()
    private let buffers: ProvidedBuffers
    /// Connections whose multishot receive ended with ENOBUFS, re-armed in this order once buffers are back.
    private var starved: [ConnectionID] = []

    /// Per slot, the destination a connect SQE points at (the kernel reads it when it runs the connect):
    /// a `sockaddr_in6` holds either family in 28 bytes, where a `sockaddr_storage` took 128 per slot.
    private let connectAddresses: UnsafeMutablePointer<sockaddr_in6>
    /// Per slot, the deadline of a connect's link timeout (the kernel reads it after submission too).
    private let connectTimeouts: UnsafeMutablePointer<__kernel_timespec>
    private var waitTimeout = __kernel_timespec()
    private var waitArgument = io_uring_getevents_arg()

    private let completionBatch: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let completionBatchSize: UInt32 = 1024
    private var usePollFirst = true
    /// Whether the kernel honours `min_wait_usec` (IORING_FEAT_MIN_TIMEOUT).
    private var batchWait = false
    /// Whether the ring runs completion work only inside our enters (DEFER_TASKRUN was accepted).
    private var deferredTaskRun = false
    /// How many completions an enter asks the kernel for when it reaps or batch-waits: half the CQ, so
    /// what it runs fits. With DEFER_TASKRUN the kernel runs queued completion work (a receive's or an
    /// accept's wake-up, a connect's completion) only inside an enter, and only about as many items as
    /// the enter asks completions for (at least 20); the rest stays queued. Asking for 1 (or the batch
    /// size, 64), a load generator starved of CPU (2–3 loop turns a second) ran less of it than churn
    /// queued: its connects completed, and so its REGISTERs left, seconds after the server had accepted
    /// (issue 12: the server's `register_timeout`s when both sides ran io_uring).
    ///
    /// At most `enterCompletionLimit`, though: with DEFER_TASKRUN an enter that asks for N completions
    /// does not return, even with a zero timeout, while fresh completion work keeps arriving and fewer
    /// than N are posted. Asking for half of a 10,000-connection server's CQ, each enter ran until
    /// nearly every connection had spoken (105 enters in 4 s, 36 ms each, `strace -c`), and the huge
    /// batches cost 1.2–1.37× the CPU per message of 64-wide ones (`Docs/benchmarks.md`, "Before and
    /// after the review"). A backlog is still worked off in full: a drain of 20 or more reaps again
    /// before the loop sleeps (`backlogLikely`).
    private let reapCount: UInt32
    /// The most completions one enter asks for (see `reapCount`).
    static let enterCompletionLimit: UInt32 = 256
    /// Without batch waiting, the last drain was large enough that the enter may have left queued work
    /// behind: the next poll reaps (asking for `reapCount`) before it sleeps.
    private var backlogLikely = false
    private var sawOverflow = false
    /// Receives are armed as bundles (`UringFeatures.receiveBundles`, and the kernel has them).
    private var useBundles = false
    /// Accepted sockets become direct descriptors in this table (`UringFeatures.directDescriptors`,
    /// and the kernel has what they need); nil: descriptors.
    private var directTable: DirectFileTable?
    /// Listeners resumed while the direct table was full: armed once an entry frees.
    private var awaitingTableRoom: [Int] = []
    /// An abortive close's option request failed once (noted once).
    private var lingerFailed = false
    /// Sends of at least `zeroCopyThreshold` bytes are `SEND_ZC` (`UringFeatures.zeroCopySends`, and the
    /// kernel has the opcode; off again if a send is refused).
    private var useZeroCopy = false
    private let zeroCopyThreshold: Int
    /// Closed connections' send buffers that zero-copy notifications are still due for.
    private var retainer = ZeroCopyRetainer()

    public init(core: EngineCore) throws(EngineError) {
        self.core = core
        configuration = core.configuration
        counters = core.counters
        generations = core.generations
        connections = core.connections
        connectAddresses = .allocate(capacity: configuration.maxConnections)
        connectTimeouts = .allocate(capacity: configuration.maxConnections)
        completionBatch = .allocate(capacity: Int(completionBatchSize))
        reapCount = max(1, min(configuration.completionQueueEntries / 2, Self.enterCompletionLimit))
        zeroCopyThreshold = max(1, configuration.zeroCopySendThreshold)

        let features: UInt32
        do {
            features = try Self.setUp(&ring, configuration, &core.stats, counters)
            deferredTaskRun = ring.flags & curing_setup_defer_taskrun != 0
        } catch {
            connectAddresses.deallocate(); connectTimeouts.deallocate(); completionBatch.deallocate()
            throw error
        }
        batchWait = features & curing_feat_min_timeout != 0 && configuration.batchWaitMicroseconds > 0
        if batchWait { core.stats.features.append("min_wait(FEAT_MIN_TIMEOUT)") }
        do {
            buffers = try ProvidedBuffers(ring: &ring, count: configuration.receiveBufferCount,
                                          size: configuration.receiveBufferSize, group: 0,
                                          incremental: configuration.uringFeatures.contains(.incrementalBuffers),
                                          syscalls: counters)
        } catch {
            io_uring_queue_exit(&ring)
            connectAddresses.deallocate(); connectTimeouts.deallocate(); completionBatch.deallocate()
            throw error
        }
        if let note = buffers.note { core.stats.notes.append(note) }
        let bundles = FeatureProbe.receiveBundles(requested: configuration.uringFeatures, ringFeatures: features)
        useBundles = bundles.use
        if let note = bundles.note { core.stats.notes.append(note) }
        if configuration.uringFeatures.contains(.directDescriptors) {
            directTable = DirectFileTable.setUp(ring: &ring, requested: configuration.directTableSize ?? configuration.maxConnections,
                                                slots: configuration.maxConnections, counters: counters, notes: &core.stats.notes)
        }
        // What every connection and listener uses (below); POLL_FIRST goes if the kernel refuses it.
        core.stats.features += ["provided_buffer_ring", "multishot_recv", "multishot_accept", "accept_poll_first"]
        if buffers.incremental { core.stats.features.append("incremental_buffers(IOU_PBUF_RING_INC)") }
        if useBundles { core.stats.features.append("recv_bundles(IORING_RECVSEND_BUNDLE)") }
        if let directTable { core.stats.features.append("direct_descriptors(\(directTable.size) fixed files)") }
        if configuration.uringFeatures.contains(.zeroCopySends) {
            counters.record(.ioUringRegister)
            let probe = io_uring_get_probe_ring(&ring)
            let supported = probe.map { io_uring_opcode_supported($0, Int32(curing_op_send_zc)) != 0 }
            if let probe { io_uring_free_probe(probe) }
            let zeroCopy = FeatureProbe.zeroCopySends(requested: configuration.uringFeatures, opcodeSupported: supported)
            useZeroCopy = zeroCopy.use
            if let note = zeroCopy.note { core.stats.notes.append(note) }
            if useZeroCopy { core.stats.features.append(Self.zeroCopyFeatureName(zeroCopyThreshold)) }
        }
    }

    private static func zeroCopyFeatureName(_ threshold: Int) -> String { "send_zc(IORING_OP_SEND_ZC,>=\(threshold)B)" }

    deinit {
        buffers.release(ring: &ring)
        io_uring_queue_exit(&ring)
        retainer.releaseAll()
        connectAddresses.deallocate()
        connectTimeouts.deallocate()
        completionBatch.deallocate()
    }

    private static func setUp(_ ring: inout io_uring, _ configuration: EngineConfiguration, _ stats: inout EngineStatistics,
                              _ counters: Counters) throws(EngineError) -> UInt32 {
        var params = io_uring_params()
        params.flags = curing_setup_submit_all | curing_setup_cqsize
        if configuration.deferTaskRun { params.flags |= curing_setup_single_issuer | curing_setup_defer_taskrun }
        params.cq_entries = configuration.completionQueueEntries
        var noSQArray = configuration.uringFeatures.contains(.noSQArray)
        var result = initialize(&ring, &params, entries: configuration.submissionQueueEntries,
                                noSQArray: &noSQArray, &stats, counters)
        if result == -EINVAL && configuration.deferTaskRun {
            // Kernels before 6.1 refuse DEFER_TASKRUN; COOP_TASKRUN (5.19) still avoids IPIs.
            stats.notes.append("SINGLE_ISSUER|DEFER_TASKRUN refused (EINVAL); using COOP_TASKRUN")
            params = io_uring_params()
            params.flags = curing_setup_submit_all | curing_setup_cqsize | curing_setup_coop_taskrun
            params.cq_entries = configuration.completionQueueEntries
            result = initialize(&ring, &params, entries: configuration.submissionQueueEntries,
                                noSQArray: &noSQArray, &stats, counters)
        }
        guard result >= 0 else {
            let error = Errno.fromNegated(result)
            throw EngineError("io_uring_setup", error, reason: .ioUringSetupFailed(error))
        }
        counters.record(.mmap, 3)
        guard params.features & curing_feat_ext_arg != 0 else {
            io_uring_queue_exit(&ring)
            throw EngineError("io_uring_setup", nil, reason: .kernelLacks(feature: "IORING_FEAT_EXT_ARG", since: "5.11"))
        }
        if params.features & curing_feat_nodrop == 0 { stats.notes.append("kernel lacks FEAT_NODROP: an overflowing CQ loses completions") }
        stats.features.append("setup:" + setupFlagNames(params.flags))
        // A registered ring fd skips the fd-table lookup on every io_uring_enter.
        counters.record(.ioUringRegister)
        if io_uring_register_ring_fd(&ring) < 0 {
            stats.notes.append("io_uring_register_ring_fd refused; using the plain ring fd")
        } else {
            stats.features.append("registered_ring_fd")
        }
        return params.features
    }

    /// One `io_uring_setup` and the rings' mapping with `params`: through the shim with
    /// `IORING_SETUP_NO_SQARRAY` while `noSQArray` (cleared, with a note, once the kernel refuses it),
    /// else liburing's own set-up.
    private static func initialize(_ ring: inout io_uring, _ params: inout io_uring_params, entries: UInt32,
                                   noSQArray: inout Bool, _ stats: inout EngineStatistics, _ counters: Counters) -> Int32 {
        guard noSQArray else {
            counters.record(.ioUringSetup)
            return io_uring_queue_init_params(entries, &ring, &params)
        }
        var outcome: Int32 = 0
        let result = curing_queue_init_no_sqarray(entries, &ring, &params, &outcome)
        let probe = FeatureProbe.noSQArray(setupOutcome: outcome)
        counters.record(.ioUringSetup, probe.setups)
        if let note = probe.note {
            stats.notes.append(note)
            noSQArray = false
        }
        return result
    }

    /// The setup flags the kernel accepted, by name: `SUBMIT_ALL|CQSIZE|SINGLE_ISSUER|DEFER_TASKRUN`.
    private static func setupFlagNames(_ flags: UInt32) -> String {
        let names: [(UInt32, String)] = [(curing_setup_submit_all, "SUBMIT_ALL"), (curing_setup_cqsize, "CQSIZE"),
                                         (curing_setup_single_issuer, "SINGLE_ISSUER"), (curing_setup_defer_taskrun, "DEFER_TASKRUN"),
                                         (curing_setup_coop_taskrun, "COOP_TASKRUN"), (curing_setup_no_sqarray, "NO_SQARRAY")]
        return names.filter { flags & $0.0 != 0 }.map(\.1).joined(separator: "|")
    }

    // MARK: - Submission

    /// A free SQE; when the submission queue is full, what is queued is submitted first.
    @inline(__always)
    private func nextSQE() -> UnsafeMutablePointer<io_uring_sqe> {
        if let sqe = io_uring_get_sqe(&ring) { return sqe }
        for _ in 0..<1000 {
            // SUBMIT_ALL takes every queued SQE unless the kernel is short of CQ room (EBUSY): reaping
            // then moves overflowed completions into the ring so the next submit goes through.
            submitAndWait(waitNanoseconds: 0, reap: true)
            if let sqe = io_uring_get_sqe(&ring) { return sqe }
        }
        preconditionFailure("io_uring submission queue still full after 1000 submits; the kernel refuses new work")
    }

    /// Makes room for `count` SQEs that must go to the kernel in one submission (a linked pair).
    private func reserveSQEs(_ count: UInt32) {
        if io_uring_sq_space_left(&ring) < count { submitAndWait(waitNanoseconds: 0, reap: false) }
    }

    /// Publishes queued SQEs and enters the kernel once: to submit, and unless `waitNanoseconds` is 0 to
    /// wait for at least one completion (nil waits without a deadline).
    private func submitAndWait(waitNanoseconds: Int64?, reap: Bool) {
        let toSubmit = curing_flush_sq(&ring)
        if toSubmit == 0 && waitNanoseconds == 0 && !reap { return }
        var flags: UInt32 = 0
        var minComplete: UInt32 = 0
        if reap || waitNanoseconds != 0 { flags |= curing_enter_getevents }
        // Batch waiting asks for a whole drain's worth: the kernel runs that much queued completion
        // work before it sleeps, and still returns at `min_wait_usec` with whatever it has.
        if waitNanoseconds != 0 { minComplete = batchWait ? reapCount : 1 }
        if curing_ring_fd_registered(&ring) != 0 { flags |= curing_enter_registered_ring }
        // A reap with DEFER_TASKRUN asks for `reapCount` completions with a zero timeout: the kernel runs
        // up to that much queued work and returns at once (ETIME), where a plain reap ran 20 items.
        let reapDeferred = reap && waitNanoseconds == 0 && deferredTaskRun
        if reapDeferred { minComplete = reapCount }
        counters.record(.ioUringEnter)
        // Not waiting: all of the call is the kernel's work on what we submitted (timed: a vDSO clock).
        let started = waitNanoseconds == 0 ? monotonicNanoseconds() : 0
        let result: Int32
        if let wait = waitNanoseconds, wait > 0 || reapDeferred {
            waitTimeout.tv_sec = wait / 1_000_000_000
            waitTimeout.tv_nsec = wait % 1_000_000_000
            result = withUnsafeMutablePointer(to: &waitTimeout) { ts in
                waitArgument.ts = UInt64(UInt(bitPattern: ts))
                // The field liburing 2.3 calls `pad` is `min_wait_usec` since kernel 6.12.
                waitArgument.pad = batchWait && wait > 0 ? configuration.batchWaitMicroseconds : 0
                return withUnsafeMutablePointer(to: &waitArgument) { arg in
                    io_uring_enter2(UInt32(curing_enter_fd(&ring)), toSubmit, minComplete, flags | curing_enter_ext_arg,
                                    UnsafeMutableRawPointer(arg).assumingMemoryBound(to: sigset_t.self), MemoryLayout<io_uring_getevents_arg>.size)
                }
            }
        } else {
            result = io_uring_enter2(UInt32(curing_enter_fd(&ring)), toSubmit, minComplete, flags, nil, 0)
        }
        if waitNanoseconds == 0 { core.stats.submitNanoseconds += monotonicNanoseconds() - started }
        if result < 0 {
            switch -result {
            case EINTR, ETIME, EAGAIN, EBUSY: break
            default: core.stats.notes.append("io_uring_enter: \(Errno.fromNegated(result))")
            }
        }
        if ring.sq.kflags.pointee & curing_sq_cq_overflow != 0 {
            if !sawOverflow { core.stats.completionQueueOverflows += 1 }
            sawOverflow = true
        } else {
            sawOverflow = false
        }
    }

    private func armAccept(_ index: Int, pollFirst: Bool) {
        let sqe = nextSQE()
        if directTable != nil {
            // The kernel picks a free entry; O_CLOEXEC means nothing in the ring's table (EINVAL).
            io_uring_prep_multishot_accept_direct(sqe, core.listeners[index].fd, nil, nil, Int32(SOCK_NONBLOCK.rawValue))
        } else {
            io_uring_prep_multishot_accept(sqe, core.listeners[index].fd, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
        }
        if pollFirst && usePollFirst { sqe.pointee.ioprio |= curing_accept_poll_first }
        io_uring_sqe_set_data64(sqe, UserData(.accept, slot: UInt32(index), generation: pollFirst ? 1 : 0).rawValue)
        core.listeners[index].armed = true
    }

    private func armReceive(_ slot: UInt32) {
        let sqe = nextSQE()
        io_uring_prep_recv_multishot(sqe, connections[Int(slot)].fd, nil, 0, 0)
        sqe.pointee.flags |= curing_iosqe_buffer_select
        if connections[Int(slot)].direct { sqe.pointee.flags |= curing_iosqe_fixed_file }
        sqe.pointee.buf_group = buffers.group
        if useBundles { sqe.pointee.ioprio |= curing_recvsend_bundle }
        io_uring_sqe_set_data64(sqe, UserData(.receive, slot: slot, generation: generations[Int(slot)]).rawValue)
        connections[Int(slot)].receive = .armed
    }

    /// Arms the receive if the connection is open, wants to read and has none armed nor a cancel of
    /// ours outstanding.
    private func rearmReceiveIfWanted(_ slot: UInt32) {
        let c = connections[Int(slot)]
        if c.isOpen && c.read == .reading && (c.receive == .idle || c.receive == .starved) { armReceive(slot) }
    }

    /// Submits the next chunk for every connection with queued bytes and no send in flight.
    private func flushSends() {
        core.flushDirty { slot in
            let i = Int(slot)
            guard connections[i].isOpen, connections[i].send == .idle,
                  let chunk = connections[i].outbound.nextChunk() else { return }
            let sqe = nextSQE()
            if useZeroCopy && chunk.count >= zeroCopyThreshold {
                io_uring_prep_send_zc(sqe, connections[i].fd, chunk.baseAddress, chunk.count, Int32(MSG_NOSIGNAL), 0)
                io_uring_sqe_set_data64(sqe, UserData(.sendZeroCopy, slot: slot, generation: generations[i]).rawValue)
                // Pinned from submission: the notification may be reaped before or after the result.
                if connections[i].direct { sqe.pointee.flags |= curing_iosqe_fixed_file }
                connections[i].outbound.pin()
                connections[i].zeroCopySend = true
            } else {
                io_uring_prep_send(sqe, connections[i].fd, chunk.baseAddress, chunk.count, Int32(MSG_NOSIGNAL))
                if connections[i].direct { sqe.pointee.flags |= curing_iosqe_fixed_file }
                io_uring_sqe_set_data64(sqe, UserData(.send, slot: slot, generation: generations[i]).rawValue)
                connections[i].zeroCopySend = false
            }
            connections[i].send = .inFlight
        }
    }

    // MARK: - EngineDriver

    public func startAccepting(_ listener: ListenerID) throws(EngineError) {
        armAccept(listener.index, pollFirst: false)
    }

    public func resumeAccepting(_ listener: ListenerID, waitForConnection: Bool) {
        // POLL_FIRST parks the accept until a connection is queued instead of failing again at once.
        if !core.listeners[listener.index].armed { armAcceptIfTableRoom(listener.index, pollFirst: waitForConnection) }
    }

    /// Arms the accept, unless the direct table is full: the kernel would then take the next connection
    /// off the queue and drop it (ENFILE), so the accept waits for a close to free an entry instead
    /// (`tableRoomFreed`), the queued connections waiting as they do while a descriptor accept is paused.
    private func armAcceptIfTableRoom(_ index: Int, pollFirst: Bool) {
        if let directTable, directTable.isFull {
            if !awaitingTableRoom.contains(index) { awaitingTableRoom.append(index) }
            return
        }
        armAccept(index, pollFirst: pollFirst)
    }

    /// A `close_direct` completed: an entry of the direct table is free. Listeners resumed while it was
    /// full accept again, parked until a connection is queued.
    private func tableRoomFreed() {
        directTable?.freed()
        guard !awaitingTableRoom.isEmpty else { return }
        for index in awaitingTableRoom where core.isListening(index) && !core.listeners[index].armed && !core.listeners[index].paused {
            armAccept(index, pollFirst: true)
        }
        awaitingTableRoom.removeAll(keepingCapacity: true)
    }

    /// Closes a direct descriptor that no connection owns (accepted without a free slot, or after its
    /// listener closed).
    private func closeOrphan(_ index: Int32) {
        let sqe = nextSQE()
        io_uring_prep_close_direct(sqe, UInt32(index))
        io_uring_sqe_set_data64(sqe, UserData(.closeOrphan, slot: UInt32(index), generation: 0).rawValue)
    }

    public func connect(_ id: ConnectionID, to destination: SocketAddress, deadline: Int64) throws(Errno) {
        let i = Int(id.slot)
        // A connect and its linked timeout must be submitted together: split across two submissions
        // the link is lost, the connect runs without a deadline and the timeout fails with EINVAL.
        if deadline > 0 { reserveSQEs(2) }
        connections[i].operationsInFlight += 1
        destination.withSockAddr { sa, len in
            UnsafeMutableRawPointer(connectAddresses + i).copyMemory(from: sa, byteCount: min(Int(len), MemoryLayout<sockaddr_in6>.size))
        }
        let sqe = nextSQE()
        connectAddresses.advanced(by: i).withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            io_uring_prep_connect(sqe, connections[i].fd, sa, destination.length)
        }
        io_uring_sqe_set_data64(sqe, UserData(.connect, slot: id.slot, generation: id.generation).rawValue)
        if deadline > 0 {
            sqe.pointee.flags |= curing_iosqe_io_link
            // Absolute (CLOCK_MONOTONIC, as `monotonicNanoseconds`): the deadline holds however late the
            // SQE is submitted.
            connectTimeouts[i] = __kernel_timespec(tv_sec: deadline / 1_000_000_000, tv_nsec: deadline % 1_000_000_000)
            let timeout = nextSQE()
            io_uring_prep_link_timeout(timeout, connectTimeouts + i, UInt32(IORING_TIMEOUT_ABS))
            io_uring_sqe_set_data64(timeout, UserData(.linkTimeout, slot: id.slot, generation: id.generation).rawValue)
        }
    }

    /// Sends go through the ring at the next `poll`: everything is queued.
    @inline(__always)
    public func sendNow(_ id: ConnectionID, _ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? { bytes }

    public func pauseReceiving(_ id: ConnectionID) {
        guard connections[Int(id.slot)].receive == .armed else { return }
        let sqe = nextSQE()
        io_uring_prep_cancel64(sqe, UserData(.receive, slot: id.slot, generation: id.generation).rawValue, 0)
        io_uring_sqe_set_data64(sqe, UserData(.cancelReceive, slot: id.slot, generation: id.generation).rawValue)
        connections[Int(id.slot)].receive = .cancelling
    }

    public func poll(timeoutNanoseconds: Int64?, _ handler: (Event) -> Void) throws(EngineError) -> Int {
        flushSends()
        var handled = fireTimers(handler)
        var wait: Int64? = (handled > 0 || backlogLikely || io_uring_cq_ready(&ring) > 0) ? 0 : core.waitNanoseconds(callerTimeout: timeoutNanoseconds)
        // Batch waiting needs the EXT_ARG form, which needs a deadline: an unbounded wait becomes 1 s slices.
        if wait == nil && batchWait { wait = 1_000_000_000 }
        submitAndWait(waitNanoseconds: wait, reap: wait == 0 && io_uring_cq_ready(&ring) == 0)
        let drained = drainCompletions(handler)
        handled += drained
        // Without batch waiting, an enter that waited ran as few as 20 items of queued work: after a
        // drain that large, the next poll reaps (asking for `reapCount`) before it sleeps.
        backlogLikely = !batchWait && deferredTaskRun && drained >= 20
        handled += fireTimers(handler)
        return handled
    }

    // MARK: - Completions

    private func fireTimers(_ handler: (Event) -> Void) -> Int {
        core.hasTimers ? core.fireTimers(now: monotonicNanoseconds(), handler) : 0
    }

    private func drainCompletions(_ handler: (Event) -> Void) -> Int {
        var total = 0
        while true {
            if io_uring_cq_ready(&ring) == 0 && sawOverflow { counters.record(.ioUringEnter) }
            let n = io_uring_peek_batch_cqe(&ring, completionBatch, completionBatchSize)
            if n == 0 { break }
            for k in 0..<Int(n) {
                let cqe = completionBatch[k]!.pointee
                complete(UserData(rawValue: cqe.user_data), result: cqe.res, flags: cqe.flags, handler)
            }
            io_uring_cq_advance(&ring, n)
            total += Int(n)
            if n < completionBatchSize { break }
        }
        if !starved.isEmpty { rearmStarved() }
        return total
    }

    /// Buffers came back during the batch: re-arm the receives that ran dry, oldest first.
    private func rearmStarved() {
        let waiting = starved
        starved.removeAll(keepingCapacity: true)
        for id in waiting where generations.isCurrent(id) {
            if connections[Int(id.slot)].receive == .starved { connections[Int(id.slot)].receive = .idle }
            rearmReceiveIfWanted(id.slot)
        }
    }

    @inline(__always)
    private func complete(_ data: UserData, result: Int32, flags: UInt32, _ handler: (Event) -> Void) {
        switch data.operation {
        case .receive: completeReceive(data, result: result, flags: flags, handler)
        case .send: completeSend(data, result: result, handler)
        case .sendZeroCopy:
            if flags & curing_cqe_f_notif != 0 {
                core.stats.zeroCopyNotifications += 1
                zeroCopyReleased(data)
            } else {
                completeZeroCopySend(data, result: result, flags: flags, handler)
            }
        case .accept: completeAccept(data, result: result, flags: flags, handler)
        case .connect: completeConnect(data, result: result, handler)
        case .close: completeClose(data, result: result, handler)
        case .cancel:
            guard generations.isCurrent(data.connection) else { return }
            connections[Int(data.slot)].operationsInFlight -= 1
            finishCloseIfIdle(data.slot)
        case .cancelReceive:
            guard generations.isCurrent(data.connection) else { return }
            let i = Int(data.slot)
            switch connections[i].receive {
            // The cancel found the receive: its ECANCELED is still to come.
            case .cancelling: connections[i].receive = .awaitingEnd
            // The receive had already ended (or the cancel found nothing): no ECANCELED will follow.
            case .awaitingCancel: connections[i].receive = .idle
            default: break
            }
            rearmReceiveIfWanted(data.slot)
            // It may have been the last completion a closing connection waited for.
            finishCloseIfIdle(data.slot)
        case .setOption:
            guard generations.isCurrent(data.connection) else { return }
            if result < 0 && !lingerFailed {
                lingerFailed = true
                core.stats.notes.append("SO_LINGER through the ring refused (\(Errno.fromNegated(result).name)): an abortive close of a direct descriptor sent FIN")
            }
            connections[Int(data.slot)].operationsInFlight -= 1
            finishCloseIfIdle(data.slot)
        case .closeOrphan:
            counters.record(.close, result < 0 ? Outcome(Errno.fromNegated(result)) : .success)
            tableRoomFreed()
        case .linkTimeout: break
        }
    }

    private func completeReceive(_ data: UserData, result: Int32, flags: UInt32, _ handler: (Event) -> Void) {
        let more = flags & curing_cqe_f_more != 0
        var bufferID: UInt16? = nil
        if flags & curing_cqe_f_buffer != 0 { bufferID = UInt16(truncatingIfNeeded: flags >> curing_cqe_buffer_shift) }
        if useBundles, let first = bufferID, result > 0 {
            completeBundle(data, first: first, result: result, more: more, handler)
            return
        }
        defer { if let bufferID { buffers.finished(bufferID, length: result, kernelKeeps: flags & curing_cqe_f_buf_more != 0) } }
        guard generations.isCurrent(data.connection) else { return }
        let i = Int(data.slot)
        // Our cancel asked before this completion: an ECANCELED now is ours.
        let cancelledByUs = connections[i].lifecycle == .closing || connections[i].receive == .cancelling || connections[i].receive == .awaitingEnd
        if !more {
            // The multishot receive ended: our cancel, if any, still has its own completion to come.
            connections[i].receive = connections[i].receive == .cancelling ? .awaitingCancel : .idle
        }
        if result > 0 {
            counters.record(.receive, .success)
            counters.received(Int(result))
            if connections[i].isOpen, let bufferID {
                handler(Event(.received, data.connection, bytes: UnsafeRawBufferPointer(start: buffers.address(of: bufferID), count: Int(result))))
            }
            // A multishot receive may end without an error (liburing issue 805): re-arm it.
            if !more && generations.isCurrent(data.connection) { rearmReceiveIfWanted(data.slot) }
        } else if result == 0 {
            let event = core.readEnded(data.slot, .closedByPeer)
            if connections[i].isOpen { handler(event) }
        } else {
            let outcome = Outcome(Errno.fromNegated(result))
            switch outcome {
            case .noBuffers:
                counters.record(.receive, .noBuffers)
                core.stats.bufferExhaustions += 1
                buffers.grow()
                if connections[i].receive == .idle {
                    connections[i].receive = .starved
                    starved.append(data.connection)
                }
            case .cancelled where cancelledByUs:
                // Our own cancel (close, or backpressure that may have drained since): not an outcome.
                rearmReceiveIfWanted(data.slot)
            default:
                let event = core.readEnded(data.slot, outcome)
                if connections[i].isOpen { handler(event) }
            }
        }
        if generations.isCurrent(data.connection) { finishCloseIfIdle(data.slot) }
    }

    /// A bundle's data completion: `result` bytes in consecutive ring buffers from `first`, each
    /// handed to the handler in turn (the last may be partly filled; with incremental consumption the
    /// first may continue a buffer an earlier receive took from). Every buffer is accounted for, for a
    /// stale completion too.
    private func completeBundle(_ data: UserData, first: UInt16, result: Int32, more: Bool, _ handler: (Event) -> Void) {
        let i = Int(data.slot)
        var current = generations.isCurrent(data.connection)
        if current {
            if !more { connections[i].receive = connections[i].receive == .cancelling ? .awaitingCancel : .idle }
            counters.record(.receive, .success)
            counters.received(Int(result))
        }
        var id = first
        var remaining = Int(result)
        while remaining > 0 {
            let available = buffers.available(id)
            let taken = min(available, remaining)
            let next = buffers.next(after: id)
            current = current && generations.isCurrent(data.connection)
            if current && connections[i].isOpen {
                handler(Event(.received, data.connection, bytes: UnsafeRawBufferPointer(start: buffers.address(of: id), count: taken)))
            }
            buffers.finished(id, length: Int32(taken), kernelKeeps: taken < available)
            remaining -= taken
            id = next
        }
        guard generations.isCurrent(data.connection) else { return }
        // A multishot receive may end without an error (liburing issue 805): re-arm it.
        if !more { rearmReceiveIfWanted(data.slot) }
        finishCloseIfIdle(data.slot)
    }

    private func completeSend(_ data: UserData, result: Int32, _ handler: (Event) -> Void) {
        guard generations.isCurrent(data.connection) else { return }
        let i = Int(data.slot)
        if connections[i].send == .inFlight { connections[i].send = .idle }
        if result >= 0 {
            if core.sent(Int(result), from: data.slot) { rearmReceiveIfWanted(data.slot) }
            if !connections[i].outbound.isEmpty {
                core.markDirty(data.slot)
            } else if connections[i].lifecycle == .draining {
                beginClose(data.slot, mode: .orderly)
            }
        } else {
            let outcome = Outcome(Errno.fromNegated(result))
            if outcome == .cancelled && connections[i].lifecycle == .closing {
                // Our own cancel: not an outcome.
                connections[i].send = .failed
            } else {
                let event = core.sendFailed(data.slot, outcome)
                if connections[i].isOpen {
                    let draining = connections[i].lifecycle == .draining
                    handler(event)
                    if draining && generations.isCurrent(data.connection) && connections[i].lifecycle == .draining {
                        beginClose(data.slot, mode: .orderly)
                    }
                }
            }
        }
        if generations.isCurrent(data.connection) { finishCloseIfIdle(data.slot) }
    }

    /// A zero-copy send's result. Without `IORING_CQE_F_MORE` no notification follows: the pin taken at
    /// submission goes now. A socket or kernel that refuses zero-copy turns it off and the same bytes
    /// go again as a plain send.
    private func completeZeroCopySend(_ data: UserData, result: Int32, flags: UInt32, _ handler: (Event) -> Void) {
        if flags & curing_cqe_f_more == 0 { zeroCopyReleased(data) }
        if result >= 0 { core.stats.zeroCopySends += 1 }
        let i = Int(data.slot)
        if result < 0, generations.isCurrent(data.connection), connections[i].lifecycle != .closing,
           let note = FeatureProbe.zeroCopyRefused(sendResult: result) {
            if useZeroCopy {
                useZeroCopy = false
                core.stats.notes.append(note)
                core.stats.features.removeAll { $0 == Self.zeroCopyFeatureName(zeroCopyThreshold) }
            }
            if connections[i].send == .inFlight { connections[i].send = .idle }
            // Nothing was consumed: the next flush sends the same chunk, plainly.
            core.markDirty(data.slot)
            return
        }
        completeSend(data, result: result, handler)
    }

    /// A zero-copy send no longer holds its bytes (its notification came, or its result said none will).
    /// A current connection's buffer is unpinned, and what queued behind the pinned half goes out; a
    /// closed one's retained half is freed at its last notification.
    private func zeroCopyReleased(_ data: UserData) {
        if generations.isCurrent(data.connection) {
            let i = Int(data.slot)
            connections[i].outbound.unpin()
            if connections[i].outbound.pins == 0 && !connections[i].outbound.isEmpty { core.markDirty(data.slot) }
        } else if retainer.notified(data.connection) {
            core.stats.zeroCopyRetained = retainer.count
        }
    }

    /// Frees the slot; a send-buffer half that zero-copy notifications are still due for is kept apart
    /// (the slot's next occupant reuses the buffer).
    private func release(_ slot: UInt32) {
        if let pinned = connections[Int(slot)].outbound.takePinned() {
            retainer.retain(pinned.memory, notifications: pinned.notifications, for: core.id(of: slot))
            core.stats.zeroCopyRetained = retainer.count
        }
        core.release(slot)
    }

    private func completeAccept(_ data: UserData, result: Int32, flags: UInt32, _ handler: (Event) -> Void) {
        let index = Int(data.slot)
        let direct = directTable != nil
        if direct && result >= 0 { directTable!.taken() }
        guard core.isListening(index) else {
            if result >= 0 { if direct { closeOrphan(result) } else { counters.close(result) } }
            return
        }
        if flags & curing_cqe_f_more == 0 { core.listeners[index].armed = false }
        if result >= 0 {
            if let id = core.accepted(result, direct: direct) {
                armReceive(id.slot)
                handler(Event(.accepted, id, listener: ListenerID(index: index)))
            } else if direct {
                closeOrphan(result)
            }
        } else {
            let outcome = Outcome(Errno.fromNegated(result))
            // The table was full: the kernel had already dequeued this connection and closed it.
            if direct && outcome == .fileTableFull { core.stats.directTableFull += 1 }
            if outcome == .other(.invalidArgument) && data.generation == 1 && usePollFirst {
                // A kernel before IORING_ACCEPT_POLL_FIRST: fall back to a plain multishot accept.
                usePollFirst = false
                core.stats.features.removeAll { $0 == "accept_poll_first" }
                core.stats.notes.append("IORING_ACCEPT_POLL_FIRST unsupported; paused accepts re-arm without it")
            } else {
                handler(core.acceptFailed(index, outcome))
            }
        }
        if core.isListening(index) && !core.listeners[index].armed && !core.listeners[index].paused { armAcceptIfTableRoom(index, pollFirst: false) }
    }

    private func completeConnect(_ data: UserData, result: Int32, _ handler: (Event) -> Void) {
        guard generations.isCurrent(data.connection) else { return }
        let i = Int(data.slot)
        connections[i].operationsInFlight -= 1
        if connections[i].lifecycle == .closing {
            finishCloseIfIdle(data.slot)
            return
        }
        if result == 0 {
            let event = core.connected(data.slot)
            rearmReceiveIfWanted(data.slot)  // not while bytes queued during the connect hold it back
            handler(event)
        } else {
            // With a link timeout, ECANCELED on the connect means the deadline passed.
            var outcome = Outcome(Errno.fromNegated(result))
            if outcome == .cancelled { outcome = .timedOut }
            counters.record(.connect, outcome)
            counters.close(connections[i].fd)
            release(data.slot)
            handler(Event(.connected, data.connection, outcome))
        }
    }

    private func completeClose(_ data: UserData, result: Int32, _ handler: (Event) -> Void) {
        guard generations.isCurrent(data.connection) else { return }
        counters.record(.close, result < 0 ? Outcome(Errno.fromNegated(result)) : .success)
        let direct = connections[Int(data.slot)].direct
        release(data.slot)
        if direct { tableRoomFreed() }
        handler(Event(.closed, data.connection))
    }

    // MARK: - Close sequence

    /// Starts closing: RST requested if abortive, pending operations cancelled; the descriptor itself is
    /// closed (through the ring) once the last of their completions is in.
    public func beginClose(_ slot: UInt32, mode: CloseMode) {
        let i = Int(slot)
        core.prepareClose(slot, mode: mode)
        let c = connections[i]
        connections[i].lifecycle = .closing
        if mode == .abortive && c.direct { setAbortiveLinger(slot) }
        // Cancel each pending request by its user data, not all requests on the fd: the kernel finds a
        // request by user data through a hash, but cancelling by fd walks every request in flight. At
        // 10,000 connections that made each cancel cost ~200 µs and a burst of closes stall the ring.
        if c.receive.isArmed { cancel(.receive, slot) }
        if c.send == .inFlight { cancel(c.zeroCopySend ? .sendZeroCopy : .send, slot) }
        if c.lifecycle == .connecting { cancel(.connect, slot) }
        finishCloseIfIdle(slot)
    }

    /// `SO_LINGER {1, 0}` on a direct descriptor, through the ring (`DirectFileTable` says why not by
    /// installing a descriptor): counted in flight, so the close goes out only after it has run.
    private func setAbortiveLinger(_ slot: UInt32) {
        guard let directTable else { return }
        let i = Int(slot)
        let sqe = nextSQE()
        curing_prep_setsockopt(sqe, connections[i].fd, SOL_SOCKET, SO_LINGER, directTable.abortiveLinger, Int32(MemoryLayout<linger>.size))
        sqe.pointee.flags |= curing_iosqe_fixed_file
        io_uring_sqe_set_data64(sqe, UserData(.setOption, slot: slot, generation: generations[i]).rawValue)
        connections[i].operationsInFlight += 1
    }

    private func cancel(_ operation: UserData.Operation, _ slot: UInt32) {
        let generation = generations[Int(slot)]
        let sqe = nextSQE()
        io_uring_prep_cancel64(sqe, UserData(operation, slot: slot, generation: generation).rawValue, 0)
        io_uring_sqe_set_data64(sqe, UserData(.cancel, slot: slot, generation: generation).rawValue)
        connections[Int(slot)].operationsInFlight += 1
    }

    /// Submits the close once nothing is left in flight for the connection.
    private func finishCloseIfIdle(_ slot: UInt32) {
        let i = Int(slot)
        let c = connections[i]
        guard c.lifecycle == .closing, c.receive == .idle || c.receive == .starved, c.send != .inFlight,
              c.operationsInFlight == 0 else { return }
        let sqe = nextSQE()
        if c.direct { io_uring_prep_close_direct(sqe, UInt32(c.fd)) } else { io_uring_prep_close(sqe, c.fd) }
        io_uring_sqe_set_data64(sqe, UserData(.close, slot: slot, generation: generations[i]).rawValue)
        connections[i].lifecycle = .closed
    }
}
