import Glibc

/// Monotonic nanoseconds (CLOCK_MONOTONIC; a vDSO call, not a syscall).
@inline(__always)
public func monotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// The engine's timers: a binary min-heap of (deadline, token). Cancellation is the caller's: a token
/// that no longer matters is ignored when it fires, which keeps the heap free of bookkeeping.
package struct TimerQueue {
    private var deadlines: [Int64] = []
    private var tokens: [UInt64] = []

    package init() {}

    package var isEmpty: Bool { deadlines.isEmpty }
    package var nextDeadline: Int64? { deadlines.first }

    package mutating func schedule(at deadline: Int64, token: UInt64) {
        deadlines.append(deadline)
        tokens.append(token)
        var i = deadlines.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard deadlines[parent] > deadlines[i] else { break }
            deadlines.swapAt(parent, i)
            tokens.swapAt(parent, i)
            i = parent
        }
    }

    /// Removes and returns the earliest token whose deadline is at or before `now`.
    package mutating func popExpired(now: Int64) -> UInt64? {
        guard let first = deadlines.first, first <= now else { return nil }
        let token = tokens[0]
        let last = deadlines.count - 1
        deadlines.swapAt(0, last)
        tokens.swapAt(0, last)
        deadlines.removeLast()
        tokens.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < deadlines.count && deadlines[l] < deadlines[m] { m = l }
            if r < deadlines.count && deadlines[r] < deadlines[m] { m = r }
            if m == i { break }
            deadlines.swapAt(i, m)
            tokens.swapAt(i, m)
            i = m
        }
        return token
    }

    /// How long `poll` may block: until the next timer or the caller's timeout, whichever is sooner.
    package func waitNanoseconds(now: Int64, callerTimeout: Int64?) -> Int64? {
        guard let next = nextDeadline else { return callerTimeout }
        let untilTimer = max(0, next - now)
        guard let callerTimeout else { return untilTimer }
        return min(untilTimer, callerTimeout)
    }
}
