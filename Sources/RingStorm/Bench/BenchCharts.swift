import Foundation
import RingStormEngine

/// The bench's charts, from its result: what `--html` shows and what `Docs/images/` keeps.
public enum BenchCharts {
    static func color(_ backend: Backend) -> String { backend == .uring ? "#1f77b4" : "#d62728" }

    /// Percentiles plotted: 1/(1-p) from 1 to 10^5 in tenths of a decade (0% ... 99.999%), as far as the
    /// histogram has values to tell them apart (1/(1-p) at most the count), then the maximum.
    static let spectrum: [Double] = (0...50).map { 100 * (1 - pow(10, -Double($0) / 10)) }

    /// The latency percentile spectrum of each backend (all its rounds merged) on a log percentile axis.
    public static func latency(_ result: Bench.Result) -> String {
        let series = result.backends.map { backend -> SVGChart.Series in
            let recorder = result.latency(backend)
            var points: [(x: Double, y: Double)] = []
            for p in spectrum where 1 / (1 - p / 100) <= Double(max(recorder.count, 1)) || p == 0 {
                points.append((1 / (1 - p / 100), Double(recorder.value(atPercentile: p))))
            }
            return SVGChart.Series(backend.benchName, color: color(backend), points: points)
        }
        let labels: [Double: String] = [1: "0%", 10: "90%", 100: "99%", 1000: "99.9%", 10000: "99.99%", 100000: "99.999%"]
        let x = SVGChart.Axis("percentile", scale: .log, ticks: [1, 10, 100, 1000, 10000, 100000], range: 1...100000) {
            labels[$0] ?? SVGChart.number($0)
        }
        let y = SVGChart.Axis("request latency (µs)")
        return SVGChart.line(title: "Latency by percentile (\(ReportFormat.count(result.configuration.connections)) connections, closed loop)",
                             x: x, y: y, series: series)
    }

    /// Requests per second over each run, sample to sample.
    public static func throughput(_ result: Bench.Result) -> String {
        let series = result.runs.map { run in
            SVGChart.Series(run.backend.benchName, color: color(run.backend), dashed: run.round > 1, inLegend: run.round == 1,
                            points: rates(run.samples) { Double($0.answered) })
        }
        return SVGChart.line(title: "Requests per second over time (dashed: later rounds)",
                             x: SVGChart.Axis("seconds since the load started"), y: SVGChart.Axis("requests/s"),
                             series: series)
    }

    /// Syscalls per second of each side over each run, on a log axis (the backends are orders apart).
    public static func syscalls(_ result: Bench.Result) -> String {
        var series: [SVGChart.Series] = []
        for run in result.runs {
            if run.samples.contains(where: { $0.serverSyscalls != nil }) {
                series.append(SVGChart.Series("\(run.backend.benchName) server", color: color(run.backend),
                                              inLegend: run.round == 1,
                                              points: rates(run.samples) { $0.serverSyscalls.map(Double.init) }))
            }
            series.append(SVGChart.Series("\(run.backend.benchName) load", color: color(run.backend), dashed: true,
                                          inLegend: run.round == 1, points: rates(run.samples) { Double($0.loadSyscalls) }))
        }
        return SVGChart.line(title: "System calls per second over time (solid: server, dashed: load)",
                             x: SVGChart.Axis("seconds since the load started"), y: SVGChart.Axis("syscalls/s", scale: .log),
                             series: series)
    }

    /// CPU µs per request of each side, each backend's median over rounds.
    public static func cpu(_ result: Bench.Result) -> String {
        var groups: [String] = []
        var metrics: [Bench.Metric] = []
        if result.runs.contains(where: { $0.server != nil }) { groups.append("server"); metrics.append(.serverCPU) }
        groups.append("load generator")
        metrics.append(.loadCPU)
        let series = result.backends.map { backend in
            SVGChart.BarSeries(backend.benchName, color: color(backend),
                               values: metrics.map { result.spread($0, backend)?.median ?? .nan })
        }
        return SVGChart.bars(title: "CPU per request (median over rounds)", groups: groups,
                             y: SVGChart.Axis("CPU µs per request") { SVGChart.trimmed(String(format: "%.2f", $0)) }, series: series)
    }

    /// Per-second rates between consecutive samples of a cumulative count, at each interval's middle.
    static func rates(_ samples: [Bench.Sample], _ value: (Bench.Sample) -> Double?) -> [(x: Double, y: Double)] {
        var out: [(x: Double, y: Double)] = []
        var previous: (t: Double, v: Double) = (0, 0)
        for s in samples {
            guard let v = value(s), s.seconds > previous.t + 1e-3 else { continue }
            out.append(((previous.t + s.seconds) / 2, max(0, v - previous.v) / (s.seconds - previous.t)))
            previous = (s.seconds, v)
        }
        return out
    }
}

/// The bench's `--html` report: one self-contained page (inline SVG and CSS, no script, no network).
public enum BenchHTML {
    public static func render(_ result: Bench.Result) -> String {
        let c = result.configuration, m = result.machine
        let e = SVGChart.escape
        var html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>ringstorm bench: io_uring vs epoll</title>
        <style>
        body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1180px; }
        table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
        th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
        th:first-child, td:first-child { text-align: left; }
        .charts { display: flex; flex-wrap: wrap; gap: 16px; }
        .charts svg { border: 1px solid #ddd; }
        dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 14px; }
        dt { font-weight: bold; }
        </style></head><body>
        <h1>ringstorm bench: io_uring vs epoll</h1>

        """
        html += "<p>\(e(result.settingsLine)).</p>\n<table>\n<tr><th>metric</th>"
        for b in result.backends { html += "<th>\(b.benchName) median</th><th>min–max</th>" }
        html += result.backends.count == 2 ? "<th>io_uring/epoll</th></tr>\n" : "</tr>\n"
        for metric in result.metrics {
            html += "<tr><td>\(e(metric.label))</td>"
            for b in result.backends {
                if let s = result.spread(metric, b) {
                    html += "<td>\(e(metric.format(s.median)))</td><td>\(e(metric.format(s.min)))–\(e(metric.format(s.max)))</td>"
                } else {
                    html += "<td>-</td><td>-</td>"
                }
            }
            if result.backends.count == 2 { html += "<td>\(result.ratio(metric).map { String(format: $0 < 0.1 ? "%.3f" : "%.2f", $0) } ?? "-")</td>" }
            html += "</tr>\n"
        }
        html += "</table>\n<div class=\"charts\">\n"
        html += BenchCharts.latency(result) + BenchCharts.throughput(result) + BenchCharts.syscalls(result) + BenchCharts.cpu(result)
        html += "</div>\n<h2>Settings and machine</h2>\n<dl>\n"
        let rows: [(String, String)] = [
            ("protocol", c.wireProtocol.rawValue), ("connections", ReportFormat.count(c.connections)),
            ("message size", "\(c.messageSize) bytes"), ("load", "closed loop, one request in flight per connection"),
            ("duration", "\(DurationParsing.format(nanoseconds: c.durationNanoseconds)) per run"), ("rounds", "\(c.rounds) (backends interleaved)"),
            ("threads", "\(c.threads) per side"), ("server", c.target.map { "\($0) (not started by the bench)" } ?? "ringstorm serve on 127.0.0.1, one per run"),
            ("placement", result.placementLine), ("kernel", m.kernel), ("CPU", m.cpuModel), ("cores", "\(m.cores)"),
            ("load average at start", String(format: "%.2f", m.loadAverage)),
        ]
        for (k, v) in rows { html += "<dt>\(e(k))</dt><dd>\(e(v))</dd>\n" }
        html += "</dl>\n<p>CPU: each process's user + system time from ready to the load's end, per request answered. "
            + "Syscalls: the engines' own counts. Memory: anonymous resident memory (RssAnon) added per established connection. "
            + "Latency: from each request's send to its answer, from the load generator's HDR histograms (all rounds merged).</p>\n"
        return html + "</body></html>\n"
    }
}
