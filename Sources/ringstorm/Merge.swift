import ArgumentParser
import Foundation
import RingStorm

/// `ringstorm merge FILE...`: shards' (or any runs') reports of one load added up exactly, printed as
/// `load` or `serve` prints its own, and written with `--json`. The merging is the library's
/// (`ReportMerge`, on `LoadWorkerReport.merge`, the code `--processes` uses).
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge reports of one load (shards, hosts, runs) exactly: counts summed, histograms added, time series aligned by wall clock.",
        discussion: """
        Every FILE is a report written by ringstorm load --json (or all of them by serve --json). Load \
        reports are merged exactly: counts summed, latency histograms (HdrHistogram, in the JSON) added \
        and their percentiles taken again, the per-interval series aligned by wall-clock start, peak open \
        the most open at one instant of the aligned series. Reports of different protocols, targets or \
        --report-interval, a load report with a server report, and reports without histograms are refused. \
        See Docs/merge.md.

        Examples:
          ringstorm merge shard-1.json shard-2.json shard-3.json
          ringstorm merge shard-*.json --json merged.json
        """
    )

    @Argument(help: "Reports to merge.")
    var files: [String] = []

    @Option(help: "Write the merged report as JSON to FILE (- for standard output).")
    var json: String?

    func run() throws {
        guard !files.isEmpty else { throw UsageError("give the reports to merge, e.g. ringstorm merge shard-1.json shard-2.json") }
        let output = try json.map { try OutputFile(option: "--json", path: $0) }
        let merged: ReportMerge.Input
        do { merged = try ReportMerge.merge(paths: files) } catch { throw UsageError(error.description) }
        var lines: [String]
        switch merged {
        case .load(let report):
            lines = deliverReport(text: Self.header(report, count: files.count) + report.text + "\n", json: output) { try report.json() }
        case .server(let report):
            lines = deliverReport(text: "merged       \(files.count) server reports\n" + report.text + "\n", json: output) { try report.json() }
        }
        if !lines.isEmpty { throw RunFailure(lines) }
    }

    /// What was merged: one line per input (host, shard, start).
    static func header(_ report: LoadReport, count: Int) -> String {
        let from = report.mergedFrom ?? []
        var text = "merged       \(count) load report\(count == 1 ? "" : "s")\n"
        for p in from {
            text += "  \(p.host)" + (p.shard.map { " shard \($0)" } ?? "") + "  started \(p.startedAt)"
                + (p.startLateByMs.map { "  (\($0) ms after --start-at)" } ?? "") + "\n"
        }
        return text
    }
}
