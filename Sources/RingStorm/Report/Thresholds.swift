import RingStormEngine

/// A pass/fail condition on a load report, in the spirit of k6 thresholds: `METRIC OP VALUE`, for
/// example `reset==0`, `answered>=99.9%`, `p99<50ms`, `connect.refused==0`, `established==connections`.
///
/// Metrics (see `Docs/load.md`, "Thresholds"):
/// - counts: `attempted`, `established`, `peak_open`, `sent`, `answered`, `failures` (every failure),
///   `connections` (the number of clients configured);
/// - an outcome, summed over phases (`reset`, `refused`, `connect_timeout`, `response_timeout`,
///   `protocol_error`, ..., or an errno name such as `EHOSTUNREACH`), or in one phase: `connect.refused`,
///   `request.response_timeout`, `idle.closed`;
/// - latencies: `p50`, `p90`, `p99`, `p99.9`, `max` of the request latency, or of one kind:
///   `connect.p99`, `register.max`, `request.p50`. Their value takes a unit: `50ms`, `200us`, `1s`
///   (a bare number is microseconds).
///
/// The value is a number, a metric name, or a percentage: `answered>=99.9%` compares answered
/// requests with requests sent, `established>=99%` established with attempted connects, an outcome
/// (`reset<=1%`) with attempted connects.
public struct Threshold: Sendable, Hashable, CustomStringConvertible {
    public enum Comparison: String, Sendable, Hashable, CaseIterable {
        case lessOrEqual = "<=", greaterOrEqual = ">=", equal = "==", notEqual = "!=", less = "<", greater = ">"

        func holds(_ a: Double, _ b: Double) -> Bool {
            switch self {
            case .less: a < b
            case .lessOrEqual: a <= b
            case .greater: a > b
            case .greaterOrEqual: a >= b
            case .equal: a == b
            case .notEqual: a != b
            }
        }
    }

    public enum Bound: Sendable, Hashable {
        /// A number (latencies in microseconds).
        case value(Double)
        /// A percentage of the metric's denominator (see the type's documentation).
        case percent(Double)
        /// Another metric.
        case metric(String)
    }

    /// The text as written.
    public let expression: String
    public let metric: String
    public let comparison: Comparison
    public let bound: Bound

    public var description: String { expression }

    /// Parses `METRIC OP VALUE` (spaces allowed); throws a `ThresholdError` naming the problem and the fix.
    public init(parsing text: String) throws(ThresholdError) {
        expression = text
        let compact = text.filter { !$0.isWhitespace }
        // Two-character operators first, so `<=` is not read as `<`.
        var found: (Comparison, Range<String.Index>)?
        for comparison in Comparison.allCases {
            if let range = compact.range(of: comparison.rawValue) { found = (comparison, range); break }
        }
        guard let (comparison, range) = found else {
            throw ThresholdError(text, "no comparison; write METRIC OP VALUE with OP one of < <= > >= == !=, e.g. reset==0 or p99<50ms")
        }
        let metric = String(compact[..<range.lowerBound])
        let value = String(compact[range.upperBound...])
        guard !metric.isEmpty, !value.isEmpty else { throw ThresholdError(text, "write METRIC OP VALUE, e.g. answered>=99.9%") }
        guard Self.isMetric(metric) else { throw ThresholdError(text, "unknown metric '\(metric)'; \(Self.metricsHint)") }
        self.metric = metric
        self.comparison = comparison
        if value.hasSuffix("%") {
            guard let number = Double(value.dropLast()), number.isFinite else {
                throw ThresholdError(text, "'\(value)' is not a percentage; write e.g. 99.9%")
            }
            guard !Self.isLatency(metric) else { throw ThresholdError(text, "a latency takes a duration, e.g. \(metric)<50ms, not a percentage") }
            guard metric != "connections" && metric != "attempted" && metric != "sent" else {
                throw ThresholdError(text, "'\(metric)' has nothing to be a percentage of; compare it with a number")
            }
            bound = .percent(number)
        } else if let number = Double(value), number.isFinite {
            bound = .value(number)
        } else if Self.isLatency(metric) {
            // Units as every duration flag reads them; a bare number was taken above, as microseconds.
            guard let nanoseconds = try? DurationParsing.nanoseconds(value) else {
                throw ThresholdError(text, "'\(value)' is not a duration; write e.g. 50ms, 200us or 1s")
            }
            bound = .value(Double(nanoseconds) / 1_000)
        } else if Self.isMetric(value) {
            guard Self.isLatency(value) == Self.isLatency(metric) else {
                throw ThresholdError(text, "compares a latency with a count")
            }
            bound = .metric(value)
        } else {
            throw ThresholdError(text, "'\(value)' is neither a number, a percentage nor a metric; \(Self.metricsHint)")
        }
    }

    static let metricsHint = "metrics are attempted, established, peak_open, sent, answered, failures, connections, an outcome (reset, "
        + "refused, connect_timeout, response_timeout, protocol_error, ...) optionally after a phase (connect.refused), "
        + "and latencies p50, p90, p99, p99.9, max optionally after connect., register. or request."

    static let counts: Set<String> = ["attempted", "established", "peak_open", "sent", "answered", "failures", "connections"]
    static let percentiles: Set<String> = ["p50", "p90", "p99", "p99.9", "max"]
    static let latencyKinds: Set<String> = ["connect", "register", "request"]

    static func isLatency(_ name: String) -> Bool {
        if percentiles.contains(name) { return true }
        guard let dot = name.firstIndex(of: ".") else { return false }
        return latencyKinds.contains(String(name[..<dot])) && percentiles.contains(String(name[name.index(after: dot)...]))
    }

    static func isOutcomeName(_ name: String) -> Bool {
        guard !name.isEmpty else { return false }
        if FailureOutcome.named.contains(where: { $0.name == name }) { return true }
        // An errno name: E followed by capitals or digits.
        return name.first == "E" && name.count > 1 && name.allSatisfy { $0.isUppercase || $0.isNumber }
    }

    static func isMetric(_ name: String) -> Bool {
        if counts.contains(name) || isLatency(name) || isOutcomeName(name) { return true }
        guard let dot = name.firstIndex(of: ".") else { return false }
        return Phase(rawValue: String(name[..<dot])) != nil && isOutcomeName(String(name[name.index(after: dot)...]))
    }

    /// The metric's value in `report` (`connections`: the clients configured), and the denominator its
    /// percentages refer to.
    static func value(of metric: String, in report: LoadReport, connections: Int) -> (value: Double, whole: Double) {
        let attempted = Double(report.connections.attempted)
        switch metric {
        case "attempted": return (attempted, attempted)
        case "established": return (Double(report.connections.established), attempted)
        case "peak_open": return (Double(report.connections.peakOpen), Double(connections))
        case "sent": return (Double(report.requests.sent), Double(report.requests.sent))
        case "answered": return (Double(report.requests.answered), Double(report.requests.sent))
        case "failures": return (Double(report.outcomes.total), attempted)
        case "connections": return (Double(connections), Double(connections))
        default: break
        }
        if isLatency(metric) {
            let (summary, percentile) = latency(metric, in: report)
            let v: UInt64
            switch percentile {
            case "p50": v = summary.p50
            case "p90": v = summary.p90
            case "p99": v = summary.p99
            case "p99.9": v = summary.p999
            default: v = summary.max
            }
            return (Double(v), 0)
        }
        if let dot = metric.firstIndex(of: "."), let phase = Phase(rawValue: String(metric[..<dot])) {
            return (Double(report.outcomes[phase][FailureOutcome(name: String(metric[metric.index(after: dot)...]))]), attempted)
        }
        let outcome = FailureOutcome(name: metric)
        return (Double(Phase.allCases.reduce(0) { $0 + report.outcomes[$1][outcome] }), attempted)
    }

    /// The latency a latency metric reads (`connect.p99`: connect's; a bare `p99`: the request's) and
    /// its percentile's name.
    static func latency(_ metric: String, in report: LoadReport) -> (summary: LatencySummary, percentile: String) {
        guard let dot = metric.firstIndex(of: "."), latencyKinds.contains(String(metric[..<dot])) else {
            return (report.latency.request, metric)
        }
        let percentile = String(metric[metric.index(after: dot)...])
        switch metric[..<dot] {
        case "connect": return (report.latency.connect, percentile)
        case "register": return (report.latency.register, percentile)
        default: return (report.latency.request, percentile)
        }
    }

    /// Whether the report meets this threshold, with the numbers compared.
    public func evaluate(_ report: LoadReport, connections: Int) -> ThresholdResult {
        let (actual, whole) = Self.value(of: metric, in: report, connections: connections)
        let isLatency = Self.isLatency(metric)
        let unit = isLatency ? " µs" : ""
        if isLatency && Self.latency(metric, in: report).summary.count == 0 {
            return ThresholdResult(threshold: self, passed: false, actual: "no samples (nothing was measured)")
        }
        switch bound {
        case .value(let limit):
            return ThresholdResult(threshold: self, passed: comparison.holds(actual, limit),
                                   actual: Self.format(actual) + unit)
        case .metric(let other):
            let limit = Self.value(of: other, in: report, connections: connections).value
            return ThresholdResult(threshold: self, passed: comparison.holds(actual, limit),
                                   actual: Self.format(actual) + unit + " against \(other) " + Self.format(limit) + unit)
        case .percent(let percent):
            // Nothing to be a share of (no request sent, no connect attempted) is 0%: `answered>=99%` is
            // not met by a run that sent nothing.
            let share = whole > 0 ? actual / whole * 100 : 0
            return ThresholdResult(threshold: self, passed: comparison.holds(share, percent),
                                   actual: Self.format(share, places: 3) + "% (\(Self.format(actual)) of \(Self.format(whole)))")
        }
    }

    static func format(_ value: Double, places: Int = 0) -> String {
        if places == 0 || value == value.rounded() { return ReportFormat.count(Int(value.rounded())) }
        return ReportFormat.decimal(value, places: places)
    }
}

public struct ThresholdError: Error, Sendable, Equatable, CustomStringConvertible {
    public let expression: String
    public let problem: String
    public init(_ expression: String, _ problem: String) {
        self.expression = expression
        self.problem = problem
    }
    public var description: String { "'\(expression)': \(problem)" }
}

/// One threshold checked against a report.
public struct ThresholdResult: Sendable, Hashable, CustomStringConvertible {
    public let threshold: Threshold
    public let passed: Bool
    /// What the report had, e.g. `3` or `99.5% (995 of 1,000)`.
    public let actual: String
    public var description: String { "\(threshold.expression): \(passed ? "ok" : "crossed"), was \(actual)" }
}

/// What a load run means for whoever started it: the thresholds crossed and whether the run did
/// anything at all. `ringstorm load` exits 1 when `passed` is false; a rig embedding RingStorm asks the
/// same value.
public struct LoadVerdict: Sendable, Hashable {
    public let results: [ThresholdResult]
    /// Why the run failed regardless of thresholds (no connection established; every response
    /// unparsable; the connections log lost lines); nil when it did not.
    public let failure: LoadRunFailure?

    public var crossed: [ThresholdResult] { results.filter { !$0.passed } }
    public var passed: Bool { failure == nil && crossed.isEmpty }
    /// 0 passed, 1 failed: the command line's exit status.
    public var exitStatus: Int32 { passed ? 0 : 1 }

    /// Checks `thresholds` and the run itself against `report` from a run of `configuration`.
    public init(report: LoadReport, configuration: LoadGenerator.Configuration, thresholds: [Threshold] = []) {
        results = thresholds.map { $0.evaluate(report, connections: configuration.connections) }
        failure = Self.runFailure(report, configuration)
    }

    /// The lines to print: one per crossed threshold and the run's failure, if any.
    public var lines: [String] {
        crossed.map { "threshold \($0.threshold.expression) crossed: was \($0.actual)" } + (failure.map { [$0.description] } ?? [])
    }

    static func runFailure(_ report: LoadReport, _ c: LoadGenerator.Configuration) -> LoadRunFailure? {
        let connect = report.outcomes.connect
        if report.connections.established == 0 {
            if report.connections.attempted == 0 { return .nothingAttempted }
            if connect.refused > 0 { return .refused(c.target) }
            if connect.connectTimeout > 0 { return .connectsTimedOut(c.target) }
            let reasons = connect.nonZero.map { "\($0.outcome.name) \(ReportFormat.count($0.count))" }.joined(separator: ", ")
            return .noConnection(c.target, reasons: reasons)
        }
        let protocolErrors = report.outcomes.register.protocolError + report.outcomes.request.protocolError
        if c.pacing != .silent, report.requests.answered == 0, protocolErrors > 0,
           report.latency.register.count == 0 {
            return .noResponseParsed(protocolErrors: protocolErrors, spoken: c.wireProtocol, likely: report.peerSignals.likelyProtocol)
        }
        if let log = report.connectionsLogFailure {
            return .connectionsLogFailed(path: c.connectionsLogPath.map { $0 == "-" ? "(standard output)" : $0 } ?? "?",
                                         error: log.error, linesLost: log.linesLost)
        }
        return nil
    }
}

/// Why a load run failed whatever its thresholds, as data: `description` words it for a rig; the
/// command line words it with its own options (`commandLineText` in `ringstorm load`).
public enum LoadRunFailure: Sendable, Hashable, CustomStringConvertible {
    /// The run was stopped before any connection was attempted.
    case nothingAttempted
    /// Every connect to the target was refused: nothing listens there.
    case refused(SocketAddress)
    /// Every connect timed out: a wrong address, or a host that drops SYNs.
    case connectsTimedOut(SocketAddress)
    /// No connection was established, for the reasons listed (outcome and count).
    case noConnection(SocketAddress, reasons: String)
    /// Connections were established but no response parsed: the server speaks another protocol.
    /// `likely`: the protocol the server's bytes point to (`PeerSignals`), when they do.
    case noResponseParsed(protocolErrors: Int, spoken: LoadGenerator.WireProtocol, likely: LoadGenerator.WireProtocol?)
    /// Writing the connections log failed: the errno in words and the lines lost.
    case connectionsLogFailed(path: String, error: String, linesLost: Int)

    public var description: String {
        switch self {
        case .nothingAttempted:
            "no connection was attempted (the run was stopped before it started)"
        case .refused(let target):
            "no connection was established: \(target) refused every connect; is a server listening there?"
        case .connectsTimedOut(let target):
            "no connection was established: every connect to \(target) timed out; is it the right address? "
                + "(nothing answered within the connect timeout)"
        case .noConnection(let target, let reasons):
            "no connection was established to \(target)" + (reasons.isEmpty ? "" : " (\(reasons))") + "; check the address"
        case .noResponseParsed(let errors, let spoken, let likely):
            "connections were established but no response parsed (\(ReportFormat.count(errors)) protocol errors): "
                + "does the server speak the \(spoken) protocol?" + Self.mismatchHint(spoken, likely: likely)
        case .connectionsLogFailed(let path, let error, let lost):
            "the connections log \(path): write failed: \(error); \(ReportFormat.count(lost)) line\(lost == 1 ? "" : "s") lost; "
                + "free space or name another file"
        }
    }

    /// Which other protocol's server would explain a run whose responses never parsed.
    package static func mismatchHint(_ spoken: LoadGenerator.WireProtocol, likely: LoadGenerator.WireProtocol?) -> String {
        // What the server sent, when it names its protocol, before the guess from ours.
        switch likely {
        case .http: return " It answered with an HTTP status line: try --protocol http"
        case .echo: return " It sent our request line back: an echo server would explain it (--protocol echo)"
        default: break
        }
        return switch spoken {
        case .ringstorm: " An echo server would explain it"
        case .echo: " A ringstorm server would explain it"
        default: ""
        }
    }
}
