/// Terminal renderings of the reports: compact, columns aligned, numbers grouped by thousands.
extension LoadReport {
    /// For example:
    /// ```
    /// load         uring, 10.00 s
    /// connections  attempted 10,000  established 9,998  peak open 9,998
    /// requests     sent 1,234,567  answered 1,234,560  (123,456/s; steady 125,010/s over 9.71 s)
    /// latency µs        count     p50     p90     p99   p99.9     max
    ///   connect        10,000      45      80     210     900   1,200
    ///   register        9,998      30      52     120     480     950
    ///   request     1,234,560      38      61     150     700   2,300
    /// failures     connect: refused 2, connect_timeout 5, EHOSTUNREACH 3
    ///              request: response_timeout 7
    /// syscalls     2,468,000 (2.00 per request)
    /// ```
    public var text: String {
        var lines: [String] = []
        lines.append(label("load") + "\(backend), " + ReportFormat.seconds(durationSeconds))
        lines.append(label("connections") + [
            "attempted " + ReportFormat.count(connections.attempted),
            "established " + ReportFormat.count(connections.established),
            "peak open " + ReportFormat.count(connections.peakOpen),
        ].joined(separator: "  "))
        var requestLine = "sent " + ReportFormat.count(requests.sent) + "  answered " + ReportFormat.count(requests.answered)
        if durationSeconds > 0 && requests.answered > 0 {
            requestLine += "  (" + ReportFormat.count(Int(requestsPerSecond.rounded())) + "/s"
            // Beside the whole-run rate: the rate once the connect ramp was over (`SteadyWindow`).
            if let steady, steady.seconds > 0 {
                requestLine += "; steady " + ReportFormat.count(Int(steady.requestsPerSecond.rounded())) + "/s over "
                    + ReportFormat.seconds(steady.seconds)
            }
            requestLine += ")"
        }
        if requests.heldBack > 0 { requestLine += "  held back " + ReportFormat.count(requests.heldBack) }
        lines.append(label("requests") + requestLine)
        if let http {
            // A non-2xx is an answer but no success: counted apart.
            lines.append(label("http") + "2xx " + ReportFormat.count(http.success) + "  3xx " + ReportFormat.count(http.redirection)
                + "  4xx " + ReportFormat.count(http.clientError) + "  5xx " + ReportFormat.count(http.serverError)
                + (http.other > 0 ? "  other " + ReportFormat.count(http.other) : "")
                + (http.non2xx > 0 ? "  (non-2xx " + ReportFormat.count(http.non2xx) + ": answered, not successes)" : ""))
        }

        // Open loop: the request latency (from the intended send) split into the generator's send lag
        // and the response time (from the actual send).
        let rows: [(String, LatencySummary)] = [
            ("connect", latency.connect), ("register", latency.register), ("request", latency.request),
            ("  send lag", latency.sendLag), ("  response", latency.response),
        ].filter { $0.1.count > 0 }
        if !rows.isEmpty {
            lines.append(contentsOf: ReportFormat.latencyTable(rows))
        }

        let failures = Phase.allCases.compactMap { phase -> String? in
            let items = outcomes[phase].nonZero
            guard !items.isEmpty else { return nil }
            return "\(phase): " + items.map { "\($0.outcome.name) \(ReportFormat.count($0.count))" }.joined(separator: ", ")
        }
        if failures.isEmpty {
            lines.append(label("failures") + "none")
        } else {
            for (i, line) in failures.enumerated() { lines.append(label(i == 0 ? "failures" : "") + line) }
        }
        if let serverErrors, !serverErrors.isEmpty {
            lines.append(label("") + "the server's ERROR frames: " + serverErrors.keys.sorted()
                .map { "\($0) \(ReportFormat.count(serverErrors[$0]!))" }.joined(separator: ", "))
        }
        for warning in generator.warnings(sendLag: latency.sendLag) { lines.append(label("warning") + warning) }
        if let late = provenance?.startLateByMs {
            lines.append(label("warning") + "started \(ReportFormat.count(Int(late.rounded()))) ms after --start-at: this shard's load began late")
        }
        lines.append(label("syscalls") + ReportFormat.count(syscalls.total)
            + (requests.answered > 0 ? " (" + ReportFormat.decimal(syscalls.perRequest, places: 2) + " per request)" : ""))
        if generator.ticks > 0 || generator.cpuSeconds > 0 { lines.append(label("generator") + generator.text) }
        if let memory { lines.append(label("memory") + memory.text) }
        lines += kernelLines(kernel)
        return lines.joined(separator: "\n")
    }
}

extension LoadReport.Generator {
    /// `busiest worker 34% of a core (CPU 3.40 s)  inside submits 0.120 s  connect calls 0.003 s (longest 120 µs)  loop late up to 52 µs`
    var text: String {
        "busiest worker " + ReportFormat.decimal(maxWorkerCPU * 100, places: 0) + "% of a core (CPU "
            + ReportFormat.decimal(cpuSeconds, places: 2) + " s)  inside submits "
            + ReportFormat.decimal(Double(submitMicroseconds) / 1e6, places: 3) + " s  connect calls "
            + ReportFormat.decimal(Double(connectCallMicroseconds) / 1e6, places: 3) + " s (longest "
            + ReportFormat.count(maxConnectCallMicroseconds) + " µs)  loop late up to " + ReportFormat.count(maxLagMicroseconds) + " µs"
    }
}

extension ServerReport {
    /// For example:
    /// ```
    /// server       uring, 30.00 s
    /// connections  accepted 10,000  peak open 10,000  shed 0  accept errors: EMFILE 12
    /// registered   9,990  register timeouts 10
    /// closed       by peer 9,000  reset by peer 12  idle 978  protocol errors 0
    /// requests     1,234,560  (41,152/s)
    /// syscalls     1,300,000 (1.05 per request)
    /// ```
    /// The `echo` protocol has no registration (no `registered` line) and counts each receive echoed
    /// as a request: `requests     2,000,000  (66,667/s)  bytes echoed 128,000,000`.
    public var text: String {
        var lines: [String] = []
        lines.append(label("server") + "\(backend), " + ReportFormat.seconds(durationSeconds))
        var connectionsLine = [
            "accepted " + ReportFormat.count(accepted),
            "peak open " + ReportFormat.count(peakOpen),
            "shed " + ReportFormat.count(shed),
        ].joined(separator: "  ")
        if !acceptErrors.isEmpty {
            connectionsLine += "  accept errors: " + acceptErrors.keys.sorted()
                .map { "\($0) \(ReportFormat.count(acceptErrors[$0]!))" }.joined(separator: ", ")
        }
        // Of the ENFILE above: dropped by the kernel, the direct-descriptor table being full.
        if directTableFull > 0 { connectionsLine += "  direct table full " + ReportFormat.count(directTableFull) }
        lines.append(label("connections") + connectionsLine)
        if registered > 0 || registerTimeouts > 0 {
            lines.append(label("registered") + ReportFormat.count(registered)
                + "  register timeouts " + ReportFormat.count(registerTimeouts))
        }
        var closedLine = [
            "by peer " + ReportFormat.count(closedByPeer),
            "reset by peer " + ReportFormat.count(resetByPeer),
            "idle " + ReportFormat.count(idleClosed),
            "protocol errors " + ReportFormat.count(protocolErrors),
        ].joined(separator: "  ")
        // Closes that had to be reset because the client never read what was queued.
        if drainTimeouts > 0 { closedLine += "  drain timeouts " + ReportFormat.count(drainTimeouts) }
        lines.append(label("closed") + closedLine)
        var requestLine = ReportFormat.count(requests)
        if durationSeconds > 0 && requests > 0 {
            requestLine += "  (" + ReportFormat.count(Int((Double(requests) / durationSeconds).rounded())) + "/s)"
        }
        if let bytesEchoed { requestLine += "  bytes echoed " + ReportFormat.count(bytesEchoed) }
        lines.append(label("requests") + requestLine)
        lines.append(label("syscalls") + ReportFormat.count(syscalls)
            + (requests > 0 ? " (" + ReportFormat.decimal(syscallSummary.perRequest, places: 2) + " per request)" : ""))
        if let memory { lines.append(label("memory") + memory.text) }
        lines += kernelLines(kernel)
        return lines.joined(separator: "\n")
    }
}

/// The left column of the text reports.
private func label(_ text: String) -> String { ReportFormat.pad(text, 13) }

/// How the reports print numbers; public so the command line's live lines print them the same way.
public enum ReportFormat {
    /// 1234567 → "1,234,567".
    public static func count<T: BinaryInteger>(_ value: T) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return value < 0 ? "-" + out : out
    }

    /// 2.0 → "2.00" (places digits after the point, rounded).
    static func decimal(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return String(value) }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let whole = scaled / Int64(scale)
        var fraction = String(scaled % Int64(scale))
        while fraction.count < places { fraction = "0" + fraction }
        return (value < 0 && scaled != 0 ? "-" : "") + count(whole) + (places > 0 ? "." + fraction : "")
    }

    static func seconds(_ value: Double) -> String { decimal(value, places: 2) + " s" }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    static func padLeft(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    /// A header line and one line per row: count, p50, p90, p99, p99.9, max, right-aligned.
    static func latencyTable(_ rows: [(String, LatencySummary)]) -> [String] {
        let cells = rows.map { row in
            [count(row.1.count), count(row.1.p50), count(row.1.p90), count(row.1.p99), count(row.1.p999), count(row.1.max)]
        }
        let titles = ["count", "p50", "p90", "p99", "p99.9", "max"]
        let widths = titles.indices.map { column in
            max(titles[column].count, 6, cells.map { $0[column].count }.max() ?? 0)
        }
        func line(_ first: String, _ values: [String]) -> String {
            pad(first, 13) + zip(values, widths).map { padLeft($0, $1) }.joined(separator: "  ")
        }
        return [line("latency µs", titles)] + zip(rows, cells).map { line("  " + $0.0, $1) }
    }
}

/// The kernel's counters, where anything happened: one line each, what it means in the user's terms.
private func kernelLines(_ kernel: KernelCounters?) -> [String] {
    guard let kernel, !kernel.isQuiet else { return [] }
    return ["kernel       " + KernelCounters.systemWideNote]
        + kernel.explanation.map { "             " + $0 }
}
