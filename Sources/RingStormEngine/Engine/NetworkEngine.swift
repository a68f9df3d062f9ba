/// Which kernel interface drives an engine.
public enum Backend: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case uring
    case epoll
    public var description: String { rawValue }
}

/// How `close` ends a connection.
public enum CloseMode: Sendable {
    /// Send what is queued, then close: the peer sees FIN (or RST if we left bytes of its unread).
    case orderly
    /// Drop what is queued and close with `SO_LINGER {1, 0}`: the peer sees RST.
    case abortive
}

/// The one interface a server or load generator is written against; `UringEngine` and `EpollEngine`
/// implement it, and nothing above this protocol knows which one runs.
///
/// An engine belongs to one thread: every call, and `poll`, happen on it. Work is queued by the calls
/// and handed to the kernel in one batch when `poll` runs; completions come back, classified, through
/// the handler passed to `poll`, which may itself queue more work.
public protocol NetworkEngine: AnyObject {
    var backend: Backend { get }

    /// Opens a listening socket (`SO_REUSEPORT` when `reusePort`) and starts accepting on it.
    func listen(on address: SocketAddress, backlog: Int32, reusePort: Bool) throws(EngineError) -> ListenerID

    /// The address a listener is bound to (with the port the kernel chose for port 0).
    func localAddress(of listener: ListenerID) -> SocketAddress?

    /// Starts accepting again after an `acceptFailed` event paused the listener. With
    /// `waitForConnection` (the default) the io_uring backend parks the accept until a connection is
    /// queued (`IORING_ACCEPT_POLL_FIRST`); without it the accept is tried at once, which is what a
    /// "spin" policy wants to show. The epoll backend tries at once either way.
    func resumeAccepting(_ listener: ListenerID, waitForConnection: Bool)

    /// Sheds one queued connection with the reserve-descriptor trick: frees the reserve descriptor,
    /// accepts, closes at once, reopens the reserve. Returns whether a connection was shed.
    func shedOne(_ listener: ListenerID) -> Bool

    /// Starts a connection from `source` (any local address when nil) to `destination`. Failure to
    /// even create the socket (EMFILE, ...) is thrown; every later failure comes as a `.connected` event.
    func connect(to destination: SocketAddress, from source: SocketAddress?, timeoutNanoseconds: Int64) throws(Errno) -> ConnectionID

    /// Queues bytes for the connection (copied). Sends to one connection complete in order; a
    /// connection whose unsent bytes exceed the configured bound stops being read until they drain.
    func send(_ connection: ConnectionID, _ bytes: UnsafeRawBufferPointer)

    /// Unsent bytes queued for the connection.
    func pendingBytes(_ connection: ConnectionID) -> Int

    /// Closes: pending operations are cancelled before the descriptor is closed. A `.closed` event
    /// follows when the slot is free.
    func close(_ connection: ConnectionID, mode: CloseMode)

    /// Schedules a `.timer` event carrying `token`. Timers are a heap inside the engine, not one per
    /// connection: callers schedule a periodic tick and keep their own deadlines.
    func schedule(afterNanoseconds delay: Int64, token: UInt64)

    /// Submits queued work, waits up to `timeoutNanoseconds` (nil: until something happens) and hands
    /// every completion to `handler`. Returns the number of events handled.
    @discardableResult
    func poll(timeoutNanoseconds: Int64?, _ handler: (Event) -> Void) throws(EngineError) -> Int

    /// Counters so far: syscalls, outcomes per operation, and backend specifics.
    var statistics: EngineStatistics { get }

    /// Open connections (accepted or connecting or connected, not yet closed).
    var openConnections: Int { get }
}

extension NetworkEngine {
    public func resumeAccepting(_ listener: ListenerID) { resumeAccepting(listener, waitForConnection: true) }
}

/// Engine settings; defaults suit an echo server at thousands of connections.
public struct EngineConfiguration: Sendable {
    /// Most connections one engine holds at once (slots are preallocated).
    public var maxConnections: Int = 20_000
    /// io_uring submission queue entries (the completion queue gets `completionQueueFactor` times more).
    public var submissionQueueEntries: UInt32 = 4096
    public var completionQueueEntries: UInt32 = 65_536
    /// Provided receive buffers (a power of two) and their size.
    public var receiveBufferCount: Int = 4096
    public var receiveBufferSize: Int = 4096
    /// A connection with more unsent bytes than this stops being read until they drain.
    public var maxPendingBytesPerConnection: Int = 1 << 20
    /// How long an orderly close may wait for the queued bytes to drain (a peer that does not read
    /// never lets them). Past it the close becomes abortive (RST), the unsent bytes are dropped and the
    /// send counts `Outcome.drainTimeout`. 0: no deadline (the close may wait forever).
    public var closeTimeoutNanoseconds: Int64 = 10_000_000_000
    /// Try `SINGLE_ISSUER | DEFER_TASKRUN` first (falls back to `COOP_TASKRUN` where refused).
    public var deferTaskRun: Bool = true
    /// io_uring: when waiting, collect completions for at most `batchWaitMicroseconds` before returning
    /// with what has arrived (`min_wait_usec`, kernel 6.12; ignored before). Bigger batches mean fewer
    /// `io_uring_enter` calls per message, for at most this much added latency. 0 returns at the first
    /// completion.
    public var batchWaitMicroseconds: UInt32 = 50
    /// No longer used by the io_uring driver: a batch wait asks for half the completion queue, because
    /// with DEFER_TASKRUN the kernel runs only about as much queued completion work as an enter asks
    /// completions for, and 64 left a starved loop behind for good (`UringDriver.reapCount`, issue 12).
    /// Kept so that configurations setting it still build; nothing reads it.
    @available(*, deprecated, message: "unused: an io_uring batch wait asks for half the completion queue")
    public var batchSize: UInt32 = 64
    /// Set TCP_NODELAY on accepted and connected sockets.
    public var noDelay: Bool = true
    /// How long before a timer is due a poll stops sleeping in the kernel and spins on the clock
    /// instead (0: never). A sleeping thread wakes some tens of microseconds after its time (the
    /// timer interrupt, an idle CPU leaving its halt, the scheduler); waking this much early and
    /// spinning the rest makes the timer fire within a microsecond or two of its time, for this much
    /// CPU per wake-up. Completions that arrive during the spin are handled when it ends. The load
    /// generator's `--send-spin`; a server has no use for it.
    public var spinNanoseconds: Int64 = 0
    /// Connects whose source port is left to the kernel search only this slice of the ephemeral
    /// range (`IP_LOCAL_PORT_RANGE`, kernel 6.3): workers given disjoint slices never probe each
    /// other's ports. nil: the whole range. An older kernel refuses it once; the engine then notes it
    /// and uses the whole range.
    public var localPortRange: ClosedRange<UInt16>? = nil
    /// io_uring features beyond the basics (`UringFeatures`), each dropped with a note where the kernel
    /// refuses it. The epoll backend ignores them.
    public var uringFeatures: UringFeatures = .defaults
    /// `UringFeatures.directDescriptors`: entries of the ring's file table, nil for one per slot
    /// (`maxConnections`). Fewer than the slots only to reproduce a full table cheaply (tests).
    package var directTableSize: Int? = nil
    /// With `UringFeatures.zeroCopySends`: the smallest send that goes out zero-copy. Below a few KiB the
    /// notification's completion and the page pinning cost more than the copy they save.
    package var zeroCopySendThreshold: Int = 4096

    public init() {}
}

/// A failure that stops an engine from starting or running (per-operation failures are events).
public struct EngineError: Error, CustomStringConvertible, Sendable {
    /// Why, as data: what a front end can act on and word in its own terms (its option names); the
    /// engine itself names no command-line option.
    public enum Reason: Sendable, Equatable {
        /// The kernel has no io_uring (ENOSYS): another backend is needed.
        case ioUringMissing
        /// io_uring_setup was refused (EPERM; ENOSYS under a seccomp filter), and by what: sysctl
        /// `kernel.io_uring_disabled`, a container's seccomp profile, or something unnamed.
        case ioUringDisabled(by: EngineError.IOUringBlocker)
        /// io_uring setup failed otherwise.
        case ioUringUnavailable
        /// The kernel lacks a feature the io_uring backend needs, first in kernel `since`.
        case kernelLacks(feature: String, since: String)
        /// Binding a listener failed: the port is taken, the host is not local, the port is privileged...
        case bindFailed(SocketAddress)
        /// A configuration value the engine cannot use, and what it must be.
        case invalidConfiguration(String)

        /// Whether another backend would get past it.
        public var needsAnotherBackend: Bool {
            switch self {
            case .ioUringMissing, .ioUringDisabled, .ioUringUnavailable, .kernelLacks: true
            case .bindFailed, .invalidConfiguration: false
            }
        }
    }

    public let operation: String
    public let errno: Errno?
    public let reason: Reason?
    /// What to do, in the engine's words (no option names); empty if there is nothing to advise.
    public let hint: String

    public init(_ operation: String, _ errno: Errno?, hint: String = "") {
        self.operation = operation
        self.errno = errno
        self.reason = nil
        self.hint = hint
    }

    public init(_ operation: String, _ errno: Errno?, reason: Reason) {
        self.operation = operation
        self.errno = errno
        self.reason = reason
        self.hint = reason.advice(errno)
    }

    public var description: String { described(hint: hint) }

    /// The one wording of an engine error: operation, errno, then `hint` (a front end passes its own,
    /// e.g. naming its options).
    public func described(hint: String) -> String {
        var text = operation
        if let errno { text += ": \(errno)" }
        if !hint.isEmpty { text += "; \(hint)" }
        return text
    }
}

extension EngineError.Reason {
    /// What is wrong, without what to do about it (nil for a bind failure: `bindFailureHint` says both).
    public var problem: String? {
        switch self {
        case .ioUringMissing: "this kernel has no io_uring"
        case .ioUringDisabled(by: .sysctl(let value)) where value >= 2:
            "io_uring is disabled for every process on this machine (sysctl kernel.io_uring_disabled=\(value))"
        case .ioUringDisabled(by: .sysctl(let value)):
            "io_uring is disabled outside the group kernel.io_uring_group (sysctl kernel.io_uring_disabled=\(value))"
        case .ioUringDisabled(by: .seccompFilter):
            "io_uring_setup was refused by this process's seccomp filter (container runtimes' default profiles deny io_uring: Docker 25+, containerd 2.0+)"
        case .ioUringDisabled(by: .unknown):
            "io_uring_setup was refused, though neither sysctl kernel.io_uring_disabled nor a seccomp filter is set (a security module's policy?)"
        case .ioUringUnavailable: "io_uring is unavailable"
        case .kernelLacks(let feature, let since): "this kernel lacks \(feature) (\(since))"
        case .invalidConfiguration(let what): what
        case .bindFailed: nil
        }
    }

    /// A fix that keeps io_uring, where there is one (a front end offers it after switching backends).
    public var keepingIOUring: String? {
        switch self {
        case .ioUringDisabled(by: .sysctl(let value)) where value >= 2: "or, as root: sysctl -w kernel.io_uring_disabled=0"
        case .ioUringDisabled(by: .sysctl): "or run as root or in the group kernel.io_uring_group names"
        case .ioUringDisabled(by: .seccompFilter):
            "or give the container a seccomp profile that allows io_uring_setup, io_uring_enter and io_uring_register (deploy/kubernetes/base/seccomp/ringstorm-io-uring.json)"
        default: nil
        }
    }

    /// What to do about it, in the engine's words: the one wording `EngineError.hint` comes from.
    public func advice(_ errno: Errno?) -> String {
        if case .bindFailed(let address) = self { return bindFailureHint(errno ?? .invalidArgument, address) }
        let problem = problem ?? ""
        guard needsAnotherBackend else { return problem }
        return "\(problem): use the epoll backend" + (keepingIOUring.map { ", \($0)" } ?? "")
    }
}

/// Counters an engine reports; summed across threads with `+`.
public struct EngineStatistics: Sendable, Equatable {
    public var backend: Backend
    public var syscalls = SyscallCounts()
    public var outcomes = OutcomeCounts()
    /// Bytes handed to the caller and bytes the kernel accepted for sending.
    public var bytesReceived = 0
    public var bytesSent = 0
    /// Times the completion queue overflowed (io_uring; should stay 0).
    public var completionQueueOverflows = 0
    /// Times a multishot receive ended with ENOBUFS and waited for buffers (io_uring).
    public var bufferExhaustions = 0
    /// Times a connection stopped being read because its unsent bytes exceeded the bound.
    public var backpressurePauses = 0
    /// Accepted sockets closed at once because every slot was taken.
    public var slotExhaustions = 0
    /// Orderly closes that could not drain within the close deadline and were aborted.
    public var drainTimeouts = 0
    /// Accepts that failed with ENFILE because the ring's direct-descriptor table was full
    /// (`UringFeatures.directDescriptors`): the kernel had already taken each of these connections off
    /// the accept queue and closed it (the client saw RST if its data had arrived, FIN if not).
    public var directTableFull = 0
    /// Time spent inside `io_uring_enter` calls that only submitted (no wait for completions): the
    /// kernel's work on our sends, connects and closes, done on this thread (io_uring; epoll's sends are
    /// write-through and timed by the caller).
    public var submitNanoseconds: Int64 = 0
    /// io_uring zero-copy sends (`UringFeatures.zeroCopySends`): sends completed, and notifications in
    /// (each send whose result said one follows has one; equal once the kernel let go of every byte).
    public var zeroCopySends = 0
    public var zeroCopyNotifications = 0
    /// Send buffers of closed connections still held for a zero-copy notification (0 once all came).
    public var zeroCopyRetained = 0
    /// Setup notes, e.g. "DEFER_TASKRUN refused; using COOP_TASKRUN".
    public var notes: [String] = []
    /// The kernel features this engine set up and uses, as the kernel granted them (e.g.
    /// `setup:SUBMIT_ALL|CQSIZE|SINGLE_ISSUER|DEFER_TASKRUN`, `multishot_recv`, `epoll_pwait2`): what a
    /// report's provenance records, so two runs can be told apart by more than the backend's name.
    public var features: [String] = []

    public init(backend: Backend) { self.backend = backend }

    /// Completed operations of every kind: the denominator of syscalls per operation.
    public var operations: Int { OperationKind.allCases.reduce(0) { $0 + outcomes.total($1) } }

    public var syscallsPerOperation: Double { operations == 0 ? 0 : Double(syscalls.total) / Double(operations) }

    public static func + (a: EngineStatistics, b: EngineStatistics) -> EngineStatistics {
        var s = a
        s.syscalls = a.syscalls + b.syscalls
        s.outcomes = a.outcomes + b.outcomes
        s.bytesReceived += b.bytesReceived
        s.bytesSent += b.bytesSent
        s.completionQueueOverflows += b.completionQueueOverflows
        s.bufferExhaustions += b.bufferExhaustions
        s.backpressurePauses += b.backpressurePauses
        s.slotExhaustions += b.slotExhaustions
        s.drainTimeouts += b.drainTimeouts
        s.directTableFull += b.directTableFull
        s.submitNanoseconds += b.submitNanoseconds
        s.zeroCopySends += b.zeroCopySends
        s.zeroCopyNotifications += b.zeroCopyNotifications
        s.zeroCopyRetained += b.zeroCopyRetained
        for note in b.notes where !s.notes.contains(note) { s.notes.append(note) }
        for feature in b.features where !s.features.contains(feature) { s.features.append(feature) }
        return s
    }
}
