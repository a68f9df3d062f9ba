import RingStormEngine

/// What one load worker has done so far: its mergeable report, plus what is only meaningful live. A worker
/// process of `load --processes` sends these to its parent as JSON (`WorkerChannel`).
package struct LoadWorkerSnapshot: Sendable, Codable {
    public var report: LoadWorkerReport
    /// Connections established and not yet closed.
    public var open: Int
    /// Whether the worker has finished its run (deadline passed, own connections closed).
    public var finished: Bool

    public init(report: LoadWorkerReport, open: Int = 0, finished: Bool = false) {
        self.report = report
        self.open = open
        self.finished = finished
    }
}

/// The run so far, summed over workers: what the live progress line shows (the counts of their
/// `LoadWorkerReport`s, without the histograms).
public struct LoadProgress: Sendable {
    public var open = 0
    public var connections = LoadReport.Connections()
    public var requests = LoadReport.Requests()
    public var outcomes = PhaseOutcomes()
    public var syscalls = 0
    /// Workers that have finished.
    public var finishedWorkers = 0

    public init() {}

    /// The sum of workers' snapshots (threads of this process, or worker processes).
    package init(_ snapshots: [LoadWorkerSnapshot]) {
        for s in snapshots {
            open += s.open
            connections.merge(s.report.connections)
            requests.merge(s.report.requests)
            outcomes.merge(s.report.outcomes)
            syscalls += s.report.syscalls
            if s.finished { finishedWorkers += 1 }
        }
    }

    /// One line: `open 1,000  established/s 250  requests/s 41,000  failures: request: reset 3`,
    /// rates over `seconds` since `previous`.
    public func line(since previous: LoadProgress, seconds: Double) -> String {
        let s = max(seconds, 1e-9)
        var text = "open " + ReportFormat.count(open)
            + "  established/s " + ReportFormat.count(Int((Double(connections.established - previous.connections.established) / s).rounded()))
            + "  requests/s " + ReportFormat.count(Int((Double(requests.answered - previous.requests.answered) / s).rounded()))
        let failures = Phase.allCases.compactMap { phase -> String? in
            let items = outcomes[phase].nonZero
            guard !items.isEmpty else { return nil }
            return "\(phase): " + items.map { "\($0.outcome.name) \(ReportFormat.count($0.count))" }.joined(separator: ", ")
        }
        text += failures.isEmpty ? "  failures: none" : "  failures: " + failures.joined(separator: "; ")
        return text
    }
}
