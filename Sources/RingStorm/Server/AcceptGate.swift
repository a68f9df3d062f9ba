import RingStormEngine

/// The descriptor-exhaustion policy of one listener: what to do when the engine reports an accept
/// failure that pauses accepting (`Outcome.pausesAccepting`: EMFILE, ENFILE, ENOBUFS, ENOMEM).
///
/// - `pause`: stay paused until a connection of ours closes (a descriptor is free) or `backoff`
///   passes. No busy loop: the worker sleeps in `poll` until the next event or tick.
/// - `shed`: shed every queued connection with the reserve descriptor, then accept again at once. When
///   nothing was queued (epoll with a full table reports EMFILE even on an empty queue) retrying at
///   once would spin, so it waits as `pause` does.
/// - `spin`: accept again at once, every time.
struct AcceptGate {
    let policy: EMFILEPolicy
    let backoffNanoseconds: Int64
    private(set) var paused = false
    private var resumeAt: Int64 = 0

    init(policy: EMFILEPolicy, backoffNanoseconds: Int64) {
        self.policy = policy
        self.backoffNanoseconds = backoffNanoseconds
    }

    /// Counts the failure and applies the policy.
    mutating func acceptFailed<Engine: NetworkEngine>(
        _ outcome: Outcome, engine: Engine, listener: ListenerID, now: Int64, counts: UnsafeMutablePointer<ServerCounts>
    ) {
        counts.pointee.recordAcceptError(outcome)
        guard outcome.pausesAccepting else { return }  // the engine keeps accepting by itself
        switch policy {
        case .spin:
            // Retry at once, as a naive server does: this is the busy loop the policy exists to show.
            engine.resumeAccepting(listener, waitForConnection: false)
        case .shed:
            var shed = 0
            while engine.shedOne(listener) { shed += 1 }
            counts.pointee.shed += shed
            if shed > 0 {
                engine.resumeAccepting(listener)
            } else {
                pause(until: now + backoffNanoseconds)
            }
        case .pause:
            pause(until: now + backoffNanoseconds)
        }
    }

    /// A connection of ours closed: a descriptor is free, accept again.
    @inline(__always)
    mutating func descriptorFreed<Engine: NetworkEngine>(engine: Engine, listener: ListenerID) {
        guard paused else { return }
        paused = false
        engine.resumeAccepting(listener)
    }

    /// Called every tick: accept again once the backoff has passed.
    mutating func tick<Engine: NetworkEngine>(engine: Engine, listener: ListenerID, now: Int64) {
        guard paused, now >= resumeAt else { return }
        paused = false
        engine.resumeAccepting(listener)
    }

    private mutating func pause(until deadline: Int64) {
        paused = true
        resumeAt = deadline
    }
}
