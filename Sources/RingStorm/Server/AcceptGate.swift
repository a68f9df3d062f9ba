import RingStormEngine

/// The descriptor-exhaustion policy of one listener: what to do when the engine reports an accept
/// failure that pauses accepting (`Outcome.pausesAccepting`: EMFILE, ENFILE, ENOBUFS, ENOMEM).
///
/// - `pause`: stay paused until a connection of ours closes (a descriptor is free) or `backoff`
///   passes. No busy loop: the worker sleeps in `poll` until the next event or tick.
/// - `shed`: at the next tick (every 100 ms), shed every queued connection with the reserve descriptor
///   in one batch, then accept again. When nothing was queued (epoll with a full table reports EMFILE
///   even on an empty queue) retrying at once would spin, so it waits as `pause` does. A descriptor
///   freed before the tick means the queued connections are accepted instead.
///
///   Why at the tick and not at once: a busy server (the seed's) reaches its accept queue some time
///   after a connection lands there, and by then the client's registration has arrived, so closing the
///   connection sends RST. An idle server on loopback that sheds the instant the handshake completes
///   usually wins the race against the client's first segment, and the client sees FIN instead
///   (measured: 837 FIN and 171 RST of 1,008 sheds in `ringstorm repro`). Batching per tick also costs
///   one wake-up per tick rather than one per connection during a connection storm.
/// - `spin`: accept again at once, every time.
struct AcceptGate {
    let policy: EMFILEPolicy
    let backoffNanoseconds: Int64
    private(set) var paused = false
    private var resumeAt: Int64 = 0
    /// `shed`: a batch is due at the next tick.
    private var shedDue = false

    init(policy: EMFILEPolicy, backoffNanoseconds: Int64) {
        self.policy = policy
        self.backoffNanoseconds = backoffNanoseconds
    }

    /// Counts the failure and applies the policy.
    mutating func acceptFailed<Engine: NetworkEngine>(
        _ outcome: Outcome, engine: Engine, listener: ListenerID, now: Int64, counts: UnsafeMutablePointer<ServerReport>
    ) {
        counts.pointee.recordAcceptError(outcome)
        guard outcome.pausesAccepting else { return }  // the engine keeps accepting by itself
        switch policy {
        case .spin:
            // Retry at once, as a naive server does: this is the busy loop the policy exists to show.
            engine.resumeAccepting(listener, waitForConnection: false)
        case .shed:
            // Shed what is queued at the next tick, in one batch (see above).
            pause(until: now)
            shedDue = true
        case .pause:
            pause(until: now + backoffNanoseconds)
        }
    }

    /// A connection of ours closed: a descriptor is free, accept again.
    @inline(__always)
    mutating func descriptorFreed<Engine: NetworkEngine>(engine: Engine, listener: ListenerID) {
        guard paused else { return }
        paused = false
        shedDue = false
        engine.resumeAccepting(listener)
    }

    /// Called every tick: shed what is queued (`shed`), or accept again once the backoff has passed.
    mutating func tick<Engine: NetworkEngine>(engine: Engine, listener: ListenerID, now: Int64,
                                              counts: UnsafeMutablePointer<ServerReport>) {
        guard paused else { return }
        if shedDue {
            shedDue = false
            var shed = 0
            while engine.shedOne(listener) { shed += 1 }
            counts.pointee.shed += shed
            if shed == 0 {
                resumeAt = now + backoffNanoseconds  // nothing queued: wait as pause does, no busy loop
                return
            }
            paused = false
            engine.resumeAccepting(listener)
            return
        }
        guard now >= resumeAt else { return }
        paused = false
        engine.resumeAccepting(listener)
    }

    private mutating func pause(until deadline: Int64) {
        paused = true
        resumeAt = deadline
    }
}
