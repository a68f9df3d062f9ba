import Foundation
import RingStormEngine
import Testing
@testable import RingStorm

/// A repeatable spread of latencies in µs: mostly small, a long tail, some zeros.
func sampleLatencies(count: Int, seed: UInt64) -> [UInt64] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let r = state >> 33
        switch r % 100 {
        case 0: return 0
        case 1...89: return 20 + r % 200
        case 90...98: return 1_000 + r % 50_000
        default: return 100_000 + r % 5_000_000
        }
    }
}

func jsonObject(_ data: Data) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

func keys(_ value: Any?) -> Set<String> {
    Set((value as? [String: Any])?.keys.map { $0 } ?? [])
}

/// A worker report with something in every field.
func sampleWorkerReport(seed: UInt64) -> LoadWorkerReport {
    var report = LoadWorkerReport(backend: .uring, durationSeconds: 10 + Double(seed))
    report.connections = .init(attempted: 1000, established: 990, peakOpen: 985)
    report.requests = .init(sent: 50_000, answered: 49_990)
    report.outcomes.record(.refused, in: .connect)
    report.outcomes.record(.timedOut, in: .connect)
    report.outcomes.record(.other(Errno(rawValue: EHOSTUNREACH)), in: .connect)
    report.outcomes.record(.responseTimeout, in: .request, times: 3)
    report.outcomes.record(.resetByPeer, in: .idle)
    report.outcomes.record(.protocolError, in: .register)
    for v in sampleLatencies(count: 990, seed: seed) { report.latency.connect.record(microseconds: v) }
    for v in sampleLatencies(count: 990, seed: seed + 100) { report.latency.register.record(microseconds: v) }
    for v in sampleLatencies(count: 49_990, seed: seed + 200) { report.latency.request.record(microseconds: v) }
    report.syscalls = 120_000
    return report
}

@Suite("latency recorder")
struct LatencyRecorderTests {
    @Test("merging recorders gives the percentiles of recording everything into one")
    func mergeIsExact() {
        let a = sampleLatencies(count: 20_000, seed: 1)
        let b = sampleLatencies(count: 7_000, seed: 2).map { $0 * 3 }
        var left = LatencyRecorder()
        var right = LatencyRecorder()
        var all = LatencyRecorder()
        for v in a { left.record(microseconds: v); all.record(microseconds: v) }
        for v in b { right.record(microseconds: v); all.record(microseconds: v) }
        let merged = left + right
        #expect(merged.summary == all.summary)
        #expect(merged == all)
        for p in [0.0, 1, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100] {
            #expect(merged.value(atPercentile: p) == all.value(atPercentile: p), "p\(p)")
        }
        #expect(merged.count == 27_000)
        #expect(merged.summary.max == (a + b).max())
    }

    @Test("summary figures are the histogram's, within 3 significant digits of the exact ones")
    func summary() {
        let values = (1...100_000).map { UInt64($0) }
        var recorder = LatencyRecorder()
        for v in values { recorder.record(microseconds: v) }
        let s = recorder.summary
        #expect(s.count == 100_000)
        #expect(s.max == 100_000)
        for (got, exact) in [(s.p50, 50_000.0), (s.p90, 90_000), (s.p99, 99_000), (s.p999, 99_900)] {
            #expect(abs(Double(got) - exact) / exact < 0.001, "\(got) vs \(exact)")
        }
        #expect(LatencyRecorder().summary == LatencySummary())
    }

    @Test("nanoseconds round up to whole microseconds; values above the range are clamped")
    func conversions() {
        var recorder = LatencyRecorder()
        recorder.record(nanoseconds: 1)
        recorder.record(nanoseconds: 1_000)
        recorder.record(nanoseconds: 1_001)
        recorder.record(nanoseconds: -5)
        #expect(recorder.value(atPercentile: 100) == 2)
        #expect(recorder.value(atPercentile: 0) == 0)
        recorder.record(microseconds: 3_600_000_000)
        #expect(recorder.clampedCount == 1)
        #expect(recorder.summary.max == LatencyRecorder.defaultHighestTrackable)
    }

    @Test("a snapshot restores the recorder exactly, extremes included")
    func snapshotRoundTrip() throws {
        for seed in UInt64(1)...5 {
            var recorder = LatencyRecorder()
            for v in sampleLatencies(count: 5_000, seed: seed) { recorder.record(microseconds: v + (seed == 3 ? 1 : 0)) }
            recorder.record(microseconds: 123_457)  // a max in a wide bucket
            let data = try JSONEncoder().encode(recorder)
            let restored = try JSONDecoder().decode(LatencyRecorder.self, from: data)
            #expect(restored == recorder)
            #expect(restored.summary == recorder.summary)
            #expect(restored.histogram.maxRecorded == recorder.histogram.maxRecorded)
            #expect(restored.histogram.min == recorder.histogram.min)
            for p in [0.0, 10, 50, 90, 99, 99.9, 100] {
                #expect(restored.value(atPercentile: p) == recorder.value(atPercentile: p))
            }
        }
        // Only non-zero buckets travel.
        var sparse = LatencyRecorder()
        sparse.record(microseconds: 5)
        sparse.record(microseconds: 5)
        sparse.record(microseconds: 70_001)
        #expect(sparse.snapshot.buckets.count == 2)
        #expect(sparse.snapshot.buckets[0] == [5, 2])
        #expect(try LatencyRecorder(snapshot: sparse.snapshot).summary == sparse.summary)
        #expect(try LatencyRecorder(snapshot: LatencyRecorder().snapshot) == LatencyRecorder())
    }

    @Test("a malformed snapshot is an error, not a crash")
    func badSnapshot() {
        var snapshot = LatencyRecorder().snapshot
        snapshot.buckets = [[1, 2, 3]]
        #expect(throws: HistogramSnapshot.Invalid.self) { try LatencyRecorder(snapshot: snapshot) }
        snapshot.buckets = []
        snapshot.significantDigits = 2
        #expect(throws: HistogramSnapshot.Invalid.self) { try LatencyRecorder(snapshot: snapshot) }
    }
}

@Suite("outcome names")
struct OutcomeMappingTests {
    @Test("engine outcomes map to report names by phase")
    func mapping() {
        #expect(FailureOutcome(.timedOut, in: .connect) == .connectTimeout)
        #expect(FailureOutcome(.timedOut, in: .request) == .other("ETIMEDOUT"))
        #expect(FailureOutcome(.refused, in: .connect) == .refused)
        #expect(FailureOutcome(.addressNotAvailable, in: .connect) == .addressNotAvailable)
        #expect(FailureOutcome(.resetByPeer, in: .idle) == .reset)
        #expect(FailureOutcome(.closedByPeer, in: .request) == .closed)
        #expect(FailureOutcome(.brokenPipe, in: .request) == .brokenPipe)
        #expect(FailureOutcome(.tooManyOpenFiles, in: .connect) == .other("EMFILE"))
        #expect(FailureOutcome(.cancelled, in: .connect) == .other("ECANCELED"))
        #expect(FailureOutcome(.other(Errno(rawValue: EHOSTUNREACH)), in: .connect) == .other("EHOSTUNREACH"))
        #expect(FailureOutcome(.success, in: .connect) == nil)
        #expect(FailureOutcome.named.map(\.name) == [
            "refused", "connect_timeout", "addr_not_available", "reset", "closed", "broken_pipe", "response_timeout",
            "protocol_error",
        ])
        for outcome in FailureOutcome.named { #expect(FailureOutcome(name: outcome.name) == outcome) }
        #expect(FailureOutcome(name: "EHOSTUNREACH") == .other("EHOSTUNREACH"))
    }

    @Test("counters count by phase and name")
    func counters() {
        var outcomes = PhaseOutcomes()
        outcomes.record(.refused, in: .connect)
        outcomes.record(.refused, in: .connect)
        outcomes.record(.responseTimeout, in: .request)
        outcomes.record(.other(Errno(rawValue: ENETUNREACH)), in: .connect)
        outcomes.record(.success, in: .connect)
        #expect(outcomes.connect.refused == 2)
        #expect(outcomes.connect.other == ["ENETUNREACH": 1])
        #expect(outcomes[.request][.responseTimeout] == 1)
        #expect(outcomes.total == 4)
        let doubled = outcomes + outcomes
        #expect(doubled.connect.refused == 4)
        #expect(doubled.connect.other == ["ENETUNREACH": 2])
        #expect(doubled.total == 8)
    }
}

@Suite("reports")
struct ReportTests {
    static let phaseKeys: Set<String> = [
        "refused", "connect_timeout", "addr_not_available", "reset", "closed", "broken_pipe", "response_timeout",
        "protocol_error", "other",
    ]
    static let latencyKeys: Set<String> = ["count", "p50", "p90", "p99", "p999", "max", "mean", "stddev", "histogram"]

    @Test("the steady window: workers' answers and rates summed, the shortest window kept, absent if one worker never got there")
    func steadyWindow() throws {
        var a = sampleWorkerReport(seed: 1)
        var b = sampleWorkerReport(seed: 2)
        a.steady = SteadyWindow(answered: 9_000, seconds: 9)   // 1,000/s
        b.steady = SteadyWindow(answered: 4_000, seconds: 8)   // 500/s
        let merged = (a + b).report
        let steady = try #require(merged.steady)
        #expect(steady.answered == 13_000 && steady.seconds == 8 && steady.requestsPerSecond == 1_500)
        let root = try jsonObject(try merged.json())
        #expect(keys(root["steady"]) == ["answered", "seconds", "requests_per_s"])
        #expect((root["steady"] as? [String: Any])?["requests_per_s"] as? Double == 1_500)
        // The whole-run rate: answered over the longest duration (12 s).
        #expect(root["requests_per_s"] as? Double == (Double(99_980) / 12 * 10).rounded() / 10)
        #expect(merged.text.contains("; steady 1,500/s over 8.00 s)"))
        #expect(try LoadReport(json: try merged.json()).steady == merged.steady)
        b.steady = nil
        #expect((a + b).report.steady == nil)
        #expect(!(a + b).report.text.contains("steady"))
    }

    @Test("peer signals: an HTTP status line on a non-HTTP client, our request line back on the HTTP client")
    func peerSignals() {
        var signals = PeerSignals()
        let status = Array("HTTP/1.1 400 Bad Request\r\n".utf8)
        let echoed = Array("GET / HTTP/1.1\r\nHost: x\r\n".utf8)
        status.withUnsafeBytes { signals.record($0, requestLine: nil) }
        #expect(signals.httpStatusLines == 1 && signals.likelyProtocol == .http)
        // The HTTP client does not count status lines (its own protocol) but does count an echo.
        var http = PeerSignals()
        status.withUnsafeBytes { http.record($0, requestLine: Array("GET ".utf8)) }
        #expect(http.likelyProtocol == nil)
        echoed.withUnsafeBytes { http.record($0, requestLine: Array("GET ".utf8)) }
        #expect(http.echoedRequests == 1 && http.likelyProtocol == .echo)
        #expect(LoadRunFailure.mismatchHint(.ringstorm, likely: .http).contains("try --protocol http"))
        #expect(LoadRunFailure.mismatchHint(.ringstorm, likely: nil) == " An echo server would explain it")
    }

    @Test("the load report JSON has exactly the documented keys")
    func loadReportKeys() throws {
        let report = sampleWorkerReport(seed: 1).report
        let root = try jsonObject(try report.json())
        #expect(Set(root.keys) == ["backend", "duration_s", "connections", "requests", "outcomes", "latency_us", "syscalls",
                                   "complete", "failed_workers", "generator", "intervals", "requests_per_s"])
        #expect(keys(root["generator"]) == ["ticks", "late_ticks", "max_lag_us", "submit_us", "connect_call_us", "max_connect_call_us",
                                            "cpu_s", "max_worker_cpu", "cq_overflows", "buffer_exhaustions", "ports_in_use"])
        #expect(root["complete"] as? Bool == true)
        #expect((root["failed_workers"] as? [Any])?.isEmpty == true)
        #expect(root["backend"] as? String == "uring")
        #expect(root["duration_s"] as? Double == 11)
        #expect(keys(root["connections"]) == ["attempted", "established", "peak_open"])
        #expect(keys(root["requests"]) == ["sent", "answered", "held_back", "peak_unsent_bytes"])
        let outcomes = try #require(root["outcomes"] as? [String: Any])
        #expect(Set(outcomes.keys) == ["connect", "register", "request", "idle"])
        for phase in outcomes.values { #expect(keys(phase) == Self.phaseKeys) }
        let connect = try #require(outcomes["connect"] as? [String: Any])
        #expect(connect["refused"] as? Int == 1)
        #expect(connect["connect_timeout"] as? Int == 1)
        #expect(connect["other"] as? [String: Int] == ["EHOSTUNREACH": 1])
        #expect((outcomes["request"] as? [String: Any])?["response_timeout"] as? Int == 3)
        #expect((outcomes["idle"] as? [String: Any])?["other"] as? [String: Int] == [:])
        let latency = try #require(root["latency_us"] as? [String: Any])
        #expect(Set(latency.keys) == ["connect", "register", "request", "send_lag", "response"])
        for summary in latency.values { #expect(keys(summary) == Self.latencyKeys) }
        #expect((latency["request"] as? [String: Any])?["count"] as? Int == 49_990)
        #expect(keys(root["syscalls"]) == ["total", "per_request"])
        #expect((root["syscalls"] as? [String: Any])?["per_request"] as? Double == 2.4)

        // An empty report has the same keys.
        let empty = try jsonObject(try LoadWorkerReport(backend: .epoll).report.json())
        #expect(Set(empty.keys) == Set(root.keys))
        #expect(keys((empty["outcomes"] as? [String: Any])?["idle"]) == Self.phaseKeys)
    }

    @Test("the load report JSON is deterministic, keys sorted, and decodes back")
    func loadReportOrderAndRoundTrip() throws {
        let report = sampleWorkerReport(seed: 2).report
        let text = String(decoding: try report.json(), as: UTF8.self)
        let order = ["\"backend\"", "\"connections\"", "\"duration_s\"", "\"latency_us\"", "\"outcomes\"", "\"requests\"", "\"syscalls\""]
        let positions = order.map { text.range(of: $0)!.lowerBound }
        #expect(positions == positions.sorted())
        #expect(try report.json() == report.json())
        #expect(try LoadReport(json: report.json()) == report)
        #expect(try LoadReport(json: report.json(pretty: false)) == report)
    }

    @Test("the server report JSON has exactly the documented keys")
    func serverReportKeys() throws {
        var report = ServerReport(backend: .epoll, durationSeconds: 30)
        report.accepted = 10
        report.recordAcceptError(.tooManyOpenFiles)
        report.recordAcceptError(.other(Errno(rawValue: ECONNABORTED)))
        report.requests = 400
        report.syscalls = 1000
        let root = try jsonObject(try report.json())
        #expect(Set(root.keys) == [
            "backend", "duration_s", "accepted", "accept_errors", "shed", "peak_open", "registered", "register_timeouts",
            "idle_closed", "closed_by_peer", "reset_by_peer", "protocol_errors", "drain_timeouts", "direct_table_full", "requests", "syscalls", "complete", "failed_workers",
            "intervals",
        ])
        #expect(root["accept_errors"] as? [String: Int] == ["EMFILE": 1, "ECONNABORTED": 1])
        #expect(keys(root["syscalls"]) == ["total", "per_request"])
        #expect((root["syscalls"] as? [String: Any])?["per_request"] as? Double == 2.5)
        #expect(try ServerReport(json: report.json()) == report)
    }

    @Test("worker reports merge exactly: counts summed, histograms added")
    func workerMerge() throws {
        let a = sampleWorkerReport(seed: 1)
        let b = sampleWorkerReport(seed: 7)
        let merged = try #require(LoadWorkerReport.merged([a, b]))
        #expect(merged == a + b)
        #expect(merged.workers == 2)
        #expect(merged.durationSeconds == 17)
        let report = merged.report
        #expect(report.connections.attempted == 2000)
        #expect(report.requests.answered == 99_980)
        #expect(report.outcomes.connect.other == ["EHOSTUNREACH": 2])
        #expect(report.outcomes.request.responseTimeout == 6)
        #expect(report.syscalls.total == 240_000)

        // The same values recorded by one worker give the same percentiles.
        var single = LatencyRecorder()
        for v in sampleLatencies(count: 49_990, seed: 201) + sampleLatencies(count: 49_990, seed: 207) {
            single.record(microseconds: v)
        }
        #expect(report.latency.request == single.publishedSummary)
        #expect(LoadWorkerReport.merged([]) == nil)
    }

    @Test("worker reports cross a process boundary as JSON without loss")
    func workerJSON() throws {
        let a = sampleWorkerReport(seed: 3)
        let data = try a.json()
        #expect(!data.contains(UInt8(ascii: "\n")))
        let decoded = try LoadWorkerReport(json: data)
        #expect(decoded == a)
        #expect(decoded.report == a.report)
        let b = sampleWorkerReport(seed: 4)
        #expect((try LoadWorkerReport(json: a.json()) + LoadWorkerReport(json: b.json())).report == (a + b).report)
    }

    @Test("server reports merge by summing")
    func serverMerge() {
        var a = ServerReport(backend: "uring", durationSeconds: 10)
        a.accepted = 5
        a.acceptErrors = ["EMFILE": 2]
        a.requests = 100
        var b = ServerReport(backend: "uring", durationSeconds: 12)
        b.accepted = 7
        b.acceptErrors = ["EMFILE": 1, "ENFILE": 4]
        b.requests = 50
        let sum = a + b
        #expect(sum.accepted == 12)
        #expect(sum.acceptErrors == ["EMFILE": 3, "ENFILE": 4])
        #expect(sum.requests == 150)
        #expect(sum.durationSeconds == 12)
        #expect(sum.backend == "uring")
        #expect((a + ServerReport(backend: "epoll")).backend == "mixed")
        #expect(ServerReport.merged([a, b]) == sum)
    }

    @Test("text renderings are aligned and name the failures")
    func text() throws {
        let load = sampleWorkerReport(seed: 1).report.text
        #expect(load.contains("connections  attempted 1,000  established 990  peak open 985"))
        #expect(load.contains("connect: refused 1, connect_timeout 1, EHOSTUNREACH 1"))
        #expect(load.contains("request: response_timeout 3"))
        #expect(load.contains("per request"))
        let lines = load.split(separator: "\n")
        let header = try #require(lines.firstIndex { $0.hasPrefix("latency µs") })
        let table = lines[header..<(header + 4)]
        #expect(table.dropFirst().allSatisfy { $0.hasPrefix("  ") })
        #expect(Set(table.map(\.count)).count == 1, "latency rows are aligned:\n\(table.joined(separator: "\n"))")
        #expect(LoadWorkerReport(backend: .uring).report.text.contains("failures     none"))
        print(load)

        var server = ServerReport(backend: .uring, durationSeconds: 2)
        server.accepted = 1234
        server.requests = 2000
        server.recordAcceptError(.tooManyOpenFiles)
        let serverText = server.text
        #expect(serverText.contains("accepted 1,234"))
        #expect(serverText.contains("accept errors: EMFILE 1"))
        #expect(serverText.contains("(1,000/s)"))
        print(serverText)
    }

    @Test("number formatting")
    func formatting() {
        #expect(ReportFormat.count(0) == "0")
        #expect(ReportFormat.count(999) == "999")
        #expect(ReportFormat.count(1000) == "1,000")
        #expect(ReportFormat.count(-1_234_567) == "-1,234,567")
        #expect(ReportFormat.decimal(2, places: 2) == "2.00")
        #expect(ReportFormat.decimal(1234.5678, places: 2) == "1,234.57")
        #expect(ReportFormat.decimal(0.005, places: 2) == "0.01")
    }
}
