import Glibc
import RingStormEngine

/// One interval of a load run (each `--report-interval`, 1 s by default): what happened in it, keyed by
/// its wall-clock start so that shards on different hosts line up. Interval starts are multiples of the
/// interval since the Unix epoch, whoever records them; the first and last interval of a run are partial.
public struct LoadInterval: Codable, Sendable, Equatable {
    /// Wall clock of the interval's start, Unix milliseconds (a multiple of the interval).
    public var startMs: Int64
    /// Connections open at the interval's end.
    public var open = 0
    /// Connects started, connects that succeeded.
    public var connects = 0
    public var established = 0
    /// Requests sent and answered in the interval.
    public var sent = 0
    public var answered = 0
    /// Failures in the interval, `phase.outcome` → count (`request.response_timeout`,
    /// `connect.EHOSTUNREACH`); only the non-zero ones.
    public var failures: [String: Int] = [:]
    /// The interval's request latency (µs): p50, p99 and the whole histogram, HdrHistogram compressed V2
    /// base64, so merged intervals get exact percentiles again. Absent when nothing was answered.
    public var requestP50: UInt64 = 0
    public var requestP99: UInt64 = 0
    public var requestHistogram: String?
    /// The generator's send lag p99 in the interval (µs), where the generator measures it; absent otherwise.
    public var sendLagP99: UInt64?

    public init(startMs: Int64) { self.startMs = startMs }

    enum CodingKeys: String, CodingKey {
        case startMs = "start_ms"
        case open, connects, established, sent, answered, failures
        case requestP50 = "request_p50_us"
        case requestP99 = "request_p99_us"
        case requestHistogram = "request_histogram"
        case sendLagP99 = "send_lag_p99_us"
    }

    public var failureTotal: Int { failures.values.reduce(0, +) }

    /// Sums two records of the same interval (two workers or shards): counts and open connections added,
    /// histograms added and their percentiles taken again. A histogram that does not decode (never one
    /// RingStorm wrote; `ringstorm merge` checks its inputs first) leaves the larger p99 and no histogram.
    public mutating func merge(_ other: LoadInterval) {
        open += other.open
        connects += other.connects
        established += other.established
        sent += other.sent
        answered += other.answered
        for (key, n) in other.failures { failures[key, default: 0] += n }
        if let a = sendLagP99, let b = other.sendLagP99 { sendLagP99 = max(a, b) } else { sendLagP99 = sendLagP99 ?? other.sendLagP99 }
        switch (requestHistogram, other.requestHistogram) {
        case (nil, _):
            requestHistogram = other.requestHistogram
            requestP50 = other.requestP50
            requestP99 = other.requestP99
        case (_, nil):
            break
        case (let a?, let b?):
            guard var sum = try? HdrHistogramEncoding.decode(a, compact: true),
                  let more = try? HdrHistogramEncoding.decode(b, compact: true) else {
                requestHistogram = nil
                requestP50 = max(requestP50, other.requestP50)
                requestP99 = max(requestP99, other.requestP99)
                break
            }
            sum.merge(more)
            setRequestLatency(sum)
        }
    }

    /// Sets the interval's request latency from its histogram.
    package mutating func setRequestLatency(_ recorder: LatencyRecorder) {
        guard !recorder.isEmpty else {
            requestHistogram = nil
            requestP50 = 0
            requestP99 = 0
            return
        }
        requestP50 = recorder.value(atPercentile: 50)
        requestP99 = recorder.value(atPercentile: 99)
        requestHistogram = recorder.encoded
    }
}

/// A series of intervals in start order, and the one way two of them merge: aligned by wall-clock start.
public enum LoadSeries {
    /// `a` and `b` aligned by start: an interval both have is summed, one only one has is kept.
    public static func merged(_ a: [LoadInterval], _ b: [LoadInterval]) -> [LoadInterval] { mergedByStart(a, b) }

    /// The most connections open at one interval's end, over the aligned series: exact for the whole run
    /// at the interval's resolution (every worker's and shard's count at the same wall-clock instant).
    public static func peakOpen(_ series: [LoadInterval]) -> Int { series.map(\.open).max() ?? 0 }
}

/// An interval keyed by its wall-clock start, load's or server's: what `mergedByStart` aligns.
protocol WallClockInterval {
    var startMs: Int64 { get }
    mutating func merge(_ other: Self)
}

extension LoadInterval: WallClockInterval {}
extension ServerInterval: WallClockInterval {}

/// Two series in start order aligned by start: an interval both have is summed, one only one has is kept.
/// The one way series merge (threads, processes, shards; load and server).
func mergedByStart<Interval: WallClockInterval>(_ a: [Interval], _ b: [Interval]) -> [Interval] {
    if a.isEmpty { return b }
    if b.isEmpty { return a }
    var out: [Interval] = []
    out.reserveCapacity(max(a.count, b.count))
    var i = 0, j = 0
    while i < a.count || j < b.count {
        if j == b.count || (i < a.count && a[i].startMs < b[j].startMs) {
            out.append(a[i]); i += 1
        } else if i == a.count || b[j].startMs < a[i].startMs {
            out.append(b[j]); j += 1
        } else {
            var sum = a[i]
            sum.merge(b[j])
            out.append(sum)
            i += 1; j += 1
        }
    }
    return out
}

/// The wall clock in nanoseconds since the Unix epoch.
package func wallClockNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// A worker's interval grid: starts at wall-clock multiples of the interval since the Unix epoch (so
/// every worker, process and shard cuts the same intervals without coordination), boundaries due on the
/// monotonic clock. Load and server workers both cut their series on it.
package struct IntervalClock {
    let intervalNanoseconds: Int64
    /// Wall clock minus the monotonic clock, read once: intervals follow one clock within a worker.
    let wallOffset: Int64
    /// Wall clock of the current interval's start, ns.
    private(set) var currentStart: Int64
    /// Monotonic time at which the current interval ends.
    private(set) var nextBoundary: UInt64

    /// The grid at `now` (monotonic ns); intervals under 1 ms are 1 ms.
    init(intervalNanoseconds: Int64, now: UInt64) {
        self.intervalNanoseconds = max(intervalNanoseconds, 1_000_000)
        wallOffset = wallClockNanoseconds() - Int64(now)
        let wall = Int64(now) + wallOffset
        currentStart = wall - wall % self.intervalNanoseconds
        nextBoundary = UInt64(currentStart + self.intervalNanoseconds - wallOffset)
    }

    /// The current interval's start, Unix ms.
    var startMs: Int64 { currentStart / 1_000_000 }

    /// On to the next interval.
    mutating func advance() {
        currentStart += intervalNanoseconds
        nextBoundary = UInt64(currentStart + intervalNanoseconds - wallOffset)
    }
}

/// What a load worker keeps to cut its run into intervals: the counts at the last interval's start and
/// that interval's own request histogram. Closing an interval costs a histogram encoding (tens of µs),
/// once per interval, off the per-request path.
package struct LoadIntervalRecorder {
    var clock: IntervalClock
    /// The counts at the current interval's start: only the sections an interval subtracts (a whole
    /// `LoadWorkerReport` here held five latency histograms, about 140 KB each, never read).
    var base = Counts()
    struct Counts {
        var connections = LoadReport.Connections()
        var requests = LoadReport.Requests()
        var outcomes = PhaseOutcomes()
    }
    package var latency = LatencyRecorder()
    /// The interval's send lag (open loop).
    package var sendLag = LatencyRecorder()

    package init(intervalNanoseconds: Int64, now: UInt64) {
        clock = IntervalClock(intervalNanoseconds: intervalNanoseconds, now: now)
    }

    /// Monotonic time at which the current interval ends.
    package var nextBoundary: UInt64 { clock.nextBoundary }

    /// Closes the current interval (at a boundary, or early at the run's end) into `report.intervals`.
    package mutating func close(into report: inout LoadWorkerReport, open: Int) {
        var interval = LoadInterval(startMs: clock.startMs)
        interval.open = open
        interval.connects = report.connections.attempted - base.connections.attempted
        interval.established = report.connections.established - base.connections.established
        interval.sent = report.requests.sent - base.requests.sent
        interval.answered = report.requests.answered - base.requests.answered
        for phase in Phase.allCases {
            for (outcome, count) in report.outcomes[phase].nonZero {
                let n = count - base.outcomes[phase][outcome]
                if n > 0 { interval.failures["\(phase).\(outcome.name)"] = n }
            }
        }
        interval.setRequestLatency(latency)
        latency.reset()
        if !sendLag.isEmpty { interval.sendLagP99 = sendLag.value(atPercentile: 99) }
        sendLag.reset()
        base.connections = report.connections
        base.requests = report.requests
        base.outcomes = report.outcomes
        report.intervals.append(interval)
        clock.advance()
    }
}

extension LoadSeries {
    /// The intervals after `startMs` that every still-running worker has closed, merged across workers:
    /// what the live view may print (a worker that has not closed an interval yet would add to it).
    /// `series`: each worker's intervals, nil for a worker not yet heard from; `finished`: whether it has
    /// ended (its last interval is then final and it holds back nothing).
    public static func completed(_ series: [(intervals: [LoadInterval], finished: Bool)?], after startMs: Int64) -> [LoadInterval] {
        var horizon = Int64.max
        for worker in series {
            guard let worker else { return [] }
            if !worker.finished { horizon = min(horizon, worker.intervals.last?.startMs ?? .min) }
        }
        var sum: [LoadInterval] = []
        for worker in series {
            guard let intervals = worker?.intervals else { continue }
            var first = intervals.count
            while first > 0 && intervals[first - 1].startMs > startMs { first -= 1 }
            sum = merged(sum, intervals[first...].filter { $0.startMs <= horizon })
        }
        return sum
    }
}

/// One interval of a server run, as `LoadInterval` is of a load run: keyed by wall-clock start.
public struct ServerInterval: Codable, Sendable, Equatable {
    public var startMs: Int64
    /// Connections open at the interval's end.
    public var open = 0
    public var accepted = 0
    public var requests = 0
    /// Connections that ended in the interval, by how: `closed_by_peer`, `reset_by_peer`, `idle_closed`,
    /// `register_timeouts`, `protocol_errors`, `shed`, and failed accepts by errno (`accept.EMFILE`);
    /// only the non-zero ones.
    public var ends: [String: Int] = [:]

    public init(startMs: Int64) { self.startMs = startMs }

    enum CodingKeys: String, CodingKey {
        case startMs = "start_ms"
        case open, accepted, requests, ends
    }

    public mutating func merge(_ other: ServerInterval) {
        open += other.open
        accepted += other.accepted
        requests += other.requests
        for (k, n) in other.ends { ends[k, default: 0] += n }
    }

    /// Two series aligned by start (as `LoadSeries.merged`).
    public static func merged(_ a: [ServerInterval], _ b: [ServerInterval]) -> [ServerInterval] { mergedByStart(a, b) }
}

/// A server worker's interval clock and the counts at the current interval's start.
package struct ServerIntervalRecorder {
    var clock: IntervalClock
    var base: ServerReport

    package init(intervalNanoseconds: Int64, now: UInt64, backend: String) {
        clock = IntervalClock(intervalNanoseconds: intervalNanoseconds, now: now)
        base = ServerReport(backend: backend)
    }

    /// Monotonic time at which the current interval ends.
    package var nextBoundary: UInt64 { clock.nextBoundary }

    /// Closes the current interval: `now` is the worker's report so far, `open` its open connections.
    package mutating func close(_ now: ServerReport, open: Int) -> ServerInterval {
        var i = ServerInterval(startMs: clock.startMs)
        i.open = open
        i.accepted = now.accepted - base.accepted
        i.requests = now.requests - base.requests
        let ends: [(String, KeyPath<ServerReport, Int>)] = [
            ("closed_by_peer", \.closedByPeer), ("reset_by_peer", \.resetByPeer), ("idle_closed", \.idleClosed),
            ("register_timeouts", \.registerTimeouts), ("protocol_errors", \.protocolErrors), ("shed", \.shed),
            ("drain_timeouts", \.drainTimeouts),
        ]
        for (name, field) in ends where now[keyPath: field] > base[keyPath: field] { i.ends[name] = now[keyPath: field] - base[keyPath: field] }
        for (errno, n) in now.acceptErrors where n > base.acceptErrors[errno, default: 0] {
            i.ends["accept.\(errno)"] = n - base.acceptErrors[errno, default: 0]
        }
        base = now
        clock.advance()
        return i
    }
}
