/// The repro on the terminal: the server's side and the clients' side next to each other, then why.
extension ReproReport {
    /// For example (shed):
    /// ```
    /// what the server saw                      what the clients saw
    /// accepted                        1,033    registering clients: 200, 75-byte REGISTER, a request every 1s
    ///   shed (accepted, closed at once) 976      connections                 1,033
    /// ...
    /// ```
    public var text: String {
        var lines: [String] = []
        lines.append("ringstorm repro: \(ReportFormat.count(clients)) registering + \(ReportFormat.count(silentClients)) silent clients "
            + "against a server with --max-fds \(maxFDs) and --on-emfile \(policy), \(backend), \(address), "
            + ReportFormat.decimal(durationSeconds, places: 0) + " s")
        lines.append("")
        let left = serverColumn
        let right = clientColumns
        let width = max(left.map(\.count).max() ?? 0, 40) + 4
        for i in 0..<max(left.count, right.count) {
            let l = i < left.count ? left[i] : ""
            let r = i < right.count ? right[i] : ""
            lines.append(r.isEmpty ? l : ReportFormat.pad(l, width) + r)
        }
        lines.append("")
        lines.append("Why")
        for paragraph in explanation { lines.append(contentsOf: Self.wrap(paragraph, width: 100)) ; lines.append("") }
        if let kernel = serverFinal.kernel, !kernel.isQuiet {
            // System-wide counters over the server's life, which spans the clients' run.
            lines.append("What the kernel counted during the run (\(KernelCounters.systemWideNote))")
            for line in kernel.explanation { lines.append(contentsOf: Self.wrap("- " + line, width: 100)) }
            lines.append("")
        }
        for note in notes { lines.append("note: " + note) }
        while lines.last == "" { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    private static func row(_ label: String, _ value: String, _ width: Int = 42) -> String {
        let gap = max(width - label.count - value.count, 1)
        return label + String(repeating: " ", count: gap) + value
    }

    private var serverColumn: [String] {
        let n: (Int) -> String = { ReportFormat.count($0) }
        var rows = ["what the server saw", "-------------------"]
        rows.append(Self.row("accepted", n(server.accepted)))
        rows.append(Self.row("  shed (closed at once)", n(server.shed)))
        rows.append(Self.row("  registered", n(server.registered)))
        rows.append(Self.row("  register timeouts", n(server.registerTimeouts)))
        let errors = server.acceptErrors.keys.sorted().filter { (server.acceptErrors[$0] ?? 0) > 0 }
        if errors.isEmpty {
            rows.append(Self.row("accept errors", "none"))
        } else {
            rows.append("accept errors")
            for name in errors { rows.append(Self.row("  " + name, n(server.acceptErrors[name]!))) }
            if server.durationSeconds > 0 {
                rows.append(Self.row("  per second", n(Int((Double(descriptorFailures) / server.durationSeconds).rounded()))))
            }
        }
        rows.append(Self.row("peak open", n(server.peakOpen)))
        rows.append(Self.row("requests answered", n(server.requests)))
        rows.append("closed")
        rows.append(Self.row("  by the client (FIN)", n(server.closedByPeer)))
        rows.append(Self.row("  reset by the client (RST)", n(server.resetByPeer)))
        rows.append(Self.row("  idle", n(server.idleClosed)))
        rows.append(Self.row("  protocol errors", n(server.protocolErrors)))
        let later = serverFinal.accepted - server.accepted
        if later > 0 { rows.append(Self.row("accepted after the clients left", n(later))) }
        rows.append(Self.row("CPU", ReportFormat.decimal(serverCPU.cpuSeconds, places: 2) + " s in "
            + ReportFormat.decimal(serverFinal.durationSeconds, places: 1) + " s ("
            + ReportFormat.decimal(serverCPUShare * 100, places: serverCPUShare < 0.1 ? 1 : 0) + "%)"))
        return rows
    }

    private var clientColumns: [String] {
        let n: (Int) -> String = { ReportFormat.count($0) }
        var rows = ["what the clients saw", "--------------------"]
        let interval = DurationParsing.format(nanoseconds: Int64(intervalSeconds * 1e9))
        rows.append("registering: \(n(clients)) clients, \(registrationBytes)-byte REGISTER, a request every \(interval), reconnecting")
        rows.append(Self.row("  connections", n(registering.connections.attempted), 44))
        if registering.connections.established != registering.connections.attempted {
            rows.append(Self.row("    connected", n(registering.connections.established), 44))
        }
        rows.append(Self.row("  registered (REGISTERED came back)", n(registering.latency.register.count), 44))
        rows.append(Self.row("  requests answered", n(registering.requests.answered) + " of " + n(registering.requests.sent), 44))
        rows.append(contentsOf: Self.endings(registering, width: 44, silent: false))
        if let silent {
            rows.append("silent: \(n(silentClients)) clients, connect and send nothing (telnet)")
            rows.append(Self.row("  connected", n(silent.connections.established), 44))
            rows.append(Self.row("  closed (FIN)", n(Self.total(silent, .closed)), 44))
            rows.append(Self.row("  reset (RST)", n(Self.total(silent, .reset)), 44))
            rows.append(Self.row("  nothing (still connected at the end)", n(silentSawNothing), 44))
            let rest = Self.endings(silent, width: 44, silent: true)
            rows.append(contentsOf: rest)
        }
        return rows
    }

    /// One row per non-zero ending, in words: `  reset (RST) waiting for REGISTERED   976`.
    private static func endings(_ report: LoadReport, width: Int, silent: Bool) -> [String] {
        var rows: [String] = []
        for phase in Phase.allCases {
            for item in report.outcomes[phase].nonZero {
                if silent && phase != .connect && (item.outcome == .closed || item.outcome == .reset) { continue }
                rows.append(row("  " + words(item.outcome) + " " + words(phase), ReportFormat.count(item.count), width))
            }
        }
        if rows.isEmpty && !silent { rows.append(row("  failures", "none", width)) }
        return rows
    }

    private static func words(_ outcome: FailureOutcome) -> String {
        switch outcome {
        case .reset: "reset (RST)"
        case .closed: "closed (FIN)"
        case .responseTimeout: "no answer"
        case .connectTimeout: "connect timed out"
        case .refused: "refused"
        case .brokenPipe: "broken pipe"
        case .protocolError: "protocol error"
        case .addressNotAvailable: "no local port"
        case .other(let name): name
        }
    }

    private static func words(_ phase: Phase) -> String {
        switch phase {
        case .connect: "connecting"
        case .register: "waiting for REGISTERED"
        case .request: "with a request out"
        case .idle: "while idle"
        }
    }

    /// Words of `text` in lines of at most `width` characters.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }
}
