import Glibc
import RingStorm

/// The live view of `ringstorm load`: one report per closed interval of the time series (`LoadInterval`,
/// the same numbers the JSON's `intervals` keep), so rates are that interval's counts over its length
/// whatever `--report-interval` is. On a terminal, a status block redrawn in place (ANSI: cursor up, clear
/// to the end); piped, one plain line per interval. `--quiet` or `--log-level notice` turns it off.
struct LiveView {
    /// The shortest `--report-interval` the workers honour: they close intervals between polls, which
    /// are 1 ms ticks apart when busy, and publish them at most every 50 ms.
    static let minimumIntervalNanoseconds: Int64 = 10_000_000

    let intervalMs: Int64
    /// When the load starts (wall clock, ms) and how long it lasts, for the time left.
    let startMs: Int64
    let durationMs: Int64
    let terminal: Bool
    /// The latest interval shown (its start, ms).
    private(set) var shownUpTo: Int64 = .min
    /// Lines of the block drawn last (terminal only), to move back over.
    private var drawnLines = 0
    /// Failures over the whole run so far, `phase.outcome` → count.
    private(set) var failureTotals: [String: Int] = [:]

    init(intervalNanoseconds: Int64, startMs: Int64, durationNanoseconds: Int64, terminal: Bool) {
        intervalMs = max(intervalNanoseconds / 1_000_000, 1)
        self.startMs = startMs
        durationMs = durationNanoseconds / 1_000_000
        self.terminal = terminal
    }

    /// Whether standard error is a terminal.
    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }

    /// What to write for the intervals newly completed (`LoadSeries.completed(_:after: shownUpTo)`):
    /// piped, one line each; on a terminal, the block for the latest, drawn over the previous one.
    mutating func render(_ intervals: [LoadInterval]) -> String {
        let fresh = intervals.filter { $0.startMs > shownUpTo }
        guard let latest = fresh.last else { return "" }
        shownUpTo = latest.startMs
        for interval in fresh { for (k, n) in interval.failures { failureTotals[k, default: 0] += n } }
        if !terminal { return fresh.map { line($0) + "\n" }.joined() }
        let block = self.block(latest)
        let up = drawnLines > 0 ? "\u{1b}[\(drawnLines)A\u{1b}[J" : ""
        drawnLines = block.count
        return up + block.joined(separator: "\n") + "\n"
    }

    /// Seconds since the load started at the interval's end, and seconds left.
    func clock(_ i: LoadInterval) -> (elapsed: Double, left: Double) {
        let end = Double(i.startMs + intervalMs - startMs) / 1000
        let elapsed = min(max(end, 0), Double(durationMs) / 1000)
        return (elapsed, max(Double(durationMs) / 1000 - elapsed, 0))
    }

    /// How long the load ran within the interval, ms: the first and last intervals are partial (they
    /// start at wall-clock multiples of the interval, the run does not).
    func span(_ i: LoadInterval) -> Int64 {
        max(1, min(i.startMs + intervalMs, startMs + durationMs) - max(i.startMs, startMs))
    }

    /// Per second, over the part of the interval the load ran.
    func rate(_ n: Int, _ i: LoadInterval) -> String { ReportFormat.count(Int((Double(n) * 1000 / Double(span(i))).rounded())) }

    func failureText(_ failures: [String: Int]) -> String {
        failures.isEmpty ? "none" : failures.sorted { $0.key < $1.key }.map { "\($0.key) \(ReportFormat.count($0.value))" }.joined(separator: ", ")
    }

    func latencyText(_ i: LoadInterval) -> String {
        i.answered == 0 ? "p50 -  p99 -" : "p50 \(ReportFormat.count(Int(i.requestP50))) µs  p99 \(ReportFormat.count(Int(i.requestP99))) µs"
    }

    /// `[   3.0s] open 1,000  connects/s 250  requests/s 41,000  p50 55 µs  p99 271 µs  failures: none  left 27.0s`
    func line(_ i: LoadInterval) -> String {
        let (elapsed, left) = clock(i)
        var text = "[\(fixed(elapsed, width: 7))s] open \(ReportFormat.count(i.open))  connects/s \(rate(i.connects, i))"
            + "  requests/s \(rate(i.answered, i))  \(latencyText(i))"
        if let lag = i.sendLagP99 { text += "  send lag p99 \(ReportFormat.count(Int(lag))) µs" }
        text += "  failures: \(failureText(i.failures))  left \(fixed(left, width: 1))s"
        return text
    }

    /// The status block for the terminal.
    func block(_ i: LoadInterval) -> [String] {
        let (elapsed, left) = clock(i)
        var lines = [
            "live         \(fixed(elapsed, width: 1))s of \(fixed(Double(durationMs) / 1000, width: 1))s, \(fixed(left, width: 1))s left",
            "  open         \(ReportFormat.count(i.open))",
            "  connects/s   \(rate(i.connects, i))   established/s \(rate(i.established, i))",
            "  requests/s   \(rate(i.answered, i))   sent/s \(rate(i.sent, i))",
            "  latency      \(latencyText(i))   (last \(fixed(Double(intervalMs) / 1000, width: 1))s)",
        ]
        if let lag = i.sendLagP99 { lines.append("  send lag     p99 \(ReportFormat.count(Int(lag))) µs") }
        lines.append("  failures     last interval: \(failureText(i.failures))")
        lines.append("               whole run: \(failureText(failureTotals))")
        return lines
    }

    func fixed(_ value: Double, width: Int) -> String {
        let text = String(Double((value * 10).rounded()) / 10)
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
