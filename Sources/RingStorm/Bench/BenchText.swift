import Foundation
import RingStormEngine

extension Backend {
    /// The backend as the bench's table, charts, progress and errors name it.
    package var benchName: String { self == .uring ? "io_uring" : "epoll" }
}

extension Bench.Metric {
    /// A value of this metric as the table prints it.
    public func format(_ value: Double) -> String {
        switch self {
        case .requestsPerSecond, .p50, .p99, .p999: return ReportFormat.count(Int(value.rounded()))
        case .serverCPU, .loadCPU: return String(format: "%.2f", value)
        case .serverSyscalls, .loadSyscalls: return String(format: value < 0.1 ? "%.4f" : "%.3f", value)
        case .serverMemory, .loadMemory:
            return value >= 10 * 1024 ? String(format: "%.1f KiB", value / 1024) : ReportFormat.count(Int(value.rounded())) + " B"
        }
    }
}

extension Bench.Result {
    /// The settings in one line: what ran, where.
    public var settingsLine: String {
        let c = configuration
        var line = "\(c.wireProtocol), \(ReportFormat.count(c.connections)) connections, \(c.messageSize)-byte messages, closed loop, "
            + "\(DurationParsing.format(nanoseconds: c.durationNanoseconds)) per run × \(c.rounds) round\(c.rounds == 1 ? "" : "s"), "
            + "\(c.threads) thread\(c.threads == 1 ? "" : "s") per side"
        if let target = c.target { line += ", against \(target)" }
        return line
    }

    /// Where each side ran.
    public var placementLine: String {
        switch (placement.server, placement.load) {
        case (let s?, let l?): return "server pinned to CPU \(s), load to CPU \(l)"
        case (nil, let l?) where configuration.target != nil: return "load pinned to CPU \(l)"
        default: return "not pinned (fewer than 2 CPUs allowed)"
        }
    }

    /// The table: one row per metric, each backend's median with its min–max over rounds, and the ratio.
    public var text: String {
        let rows = metrics
        let header = ["metric"] + backends.map { "\($0.benchName) median (min–max)" }
            + (ratioShown ? ["io_uring/epoll"] : [])
        var table: [[String]] = [header]
        for metric in rows {
            var cells = [metric.label]
            for b in backends {
                guard let s = spread(metric, b) else { cells.append("-"); continue }
                cells.append(runs.filter { $0.backend == b }.count > 1
                    ? "\(metric.format(s.median)) (\(metric.format(s.min))–\(metric.format(s.max)))" : metric.format(s.median))
            }
            if ratioShown { cells.append(ratio(metric).map { String(format: $0 < 0.1 ? "%.3f" : "%.2f", $0) } ?? "-") }
            table.append(cells)
        }
        let widths = (0..<header.count).map { i in table.map { $0[i].count }.max() ?? 0 }
        var text = "ringstorm bench: \(settingsLine)\n"
        text += "machine: \(machine.kernel), \(machine.cpuModel), \(machine.cores) CPUs, load average \(String(format: "%.2f", machine.loadAverage)) at the start; \(placementLine)\n\n"
        for (n, row) in table.enumerated() {
            text += row.enumerated().map { i, cell in
                i == 0 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - cell.count) + cell
            }.joined(separator: "  ") + "\n"
            if n == 0 { text += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        let failed = runs.filter { !$0.failures.isEmpty || $0.established < $0.connections }
        for run in failed {
            text += "note: round \(run.round) \(run.backend): \(ReportFormat.count(run.established)) of \(ReportFormat.count(run.connections)) established"
                + (run.failures.isEmpty ? "" : "; failures " + run.failures.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                + "\n"
        }
        text += "CPU is each process's user + system time from ready to the load's end per request answered; syscalls are the engines' own counts; "
            + "memory is anonymous resident memory (RssAnon) added per established connection, peak over ready.\n"
        if backends.contains(.uring) {
            let e = EngineConfiguration()
            text += "io_uring's memory includes its provided-buffer pool (\(ReportFormat.count(e.receiveBufferCount)) × \(e.receiveBufferSize / 1024) KiB per engine), "
                + "faulted in as receives use it rather than per connection: at few connections it dominates.\n"
        }
        return text
    }

    private var ratioShown: Bool { backends.contains(.uring) && backends.contains(.epoll) }
}
