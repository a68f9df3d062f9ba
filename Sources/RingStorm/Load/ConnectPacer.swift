/// When connects start: evenly spaced at the worker's share of the connect rate, not in a burst per
/// tick. A burst of thousands of SYNs submitted at once overflows the loopback backlog
/// (`net.core.netdev_max_backlog`) and the accept queue, and the dropped SYNs come back only after the
/// kernel's 1 s retransmission timeout; the connects themselves (the port search, the SYN) run inline
/// in the submitting thread, so a burst also stalls everything else the worker does.
///
/// The schedule is a virtual clock: connect `n` is due at `start + n × interval`. A worker woken late
/// starts what fell due meanwhile, but at most `burst` per wake-up (then wakes again at once), and the
/// schedule never lags more than `maxLag`: the rate holds through short hiccups without saving up a
/// heap of connects after a quiet spell. Plain arithmetic on integers: nothing allocates.
struct ConnectPacer: Equatable {
    /// Nanoseconds between connects (0: no pacing, all at once).
    let intervalNanoseconds: Int64
    /// The most connects started in one wake-up.
    let burst: Int
    /// When the next connect is due.
    private(set) var nextAt: Int64

    /// Wake-ups at least this far apart: at 30,000 connects/s a worker wakes every 100 µs for 3 connects
    /// rather than 30,000 times a second for one (each wake-up is a kernel entry).
    static let minimumGapNanoseconds: Int64 = 100_000
    /// The most connects one wake-up starts: this much of the schedule.
    static let burstWindowNanoseconds: Int64 = 1_000_000
    static let minimumBurst = 16
    /// How far the schedule may fall behind before it forgets the difference.
    static let maxLagNanoseconds: Int64 = 100_000_000

    init(ratePerSecond rate: Double, now: Int64) {
        if rate > 0 {
            intervalNanoseconds = max(1, Int64((1e9 / rate).rounded()))
            // A millisecond's worth: io_uring wakes every 100 µs (a tenth of that each time), epoll
            // sleeps in whole milliseconds; a late worker catches up in steps no bigger. At low rates
            // at least `minimumBurst`, so a worker woken late on a busy machine still keeps up.
            burst = max(Self.minimumBurst, Int((Double(Self.burstWindowNanoseconds) / Double(intervalNanoseconds)).rounded(.up)))
        } else {
            intervalNanoseconds = 0
            burst = .max
        }
        nextAt = now
    }

    /// How many of `queued` connects to start at `now`; the schedule advances by that many.
    mutating func due(now: Int64, queued: Int) -> Int {
        guard queued > 0 else { return 0 }
        guard intervalNanoseconds > 0 else { return queued }
        if nextAt < now - Self.maxLagNanoseconds { nextAt = now - Self.maxLagNanoseconds }
        guard nextAt <= now else { return 0 }
        let fallen = Int((now - nextAt) / intervalNanoseconds) + 1
        let n = min(fallen, queued, burst)
        nextAt += Int64(n) * intervalNanoseconds
        return n
    }

    /// Nothing waits to connect: the schedule restarts from now, so idle time is not saved up.
    mutating func idle(now: Int64) {
        if nextAt < now { nextAt = now }
    }

    /// When to wake next for connects still queued.
    func nextWake(now: Int64) -> Int64 {
        max(nextAt, now + Self.minimumGapNanoseconds)
    }
}
