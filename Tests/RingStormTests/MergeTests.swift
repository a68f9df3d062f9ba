import Foundation
import Glibc
import RingStormEngine
import Testing
@testable import RingStorm
@testable import ringstorm

/// `ringstorm merge`, shards, `--start-at` and the live view's arithmetic.
@Suite struct MergeTests {
    /// A published report (as `load --json` writes it) read back, with a provenance of `protocol`/`target`.
    func published(_ w: LoadWorkerReport, protocol wire: LoadGenerator.WireProtocol = .ringstorm, port: UInt16 = 7200) throws -> LoadReport {
        var r = w.report
        var c = LoadGenerator.Configuration(target: try SocketAddress(parsing: "127.0.0.1:\(port)"))
        c.wireProtocol = wire
        r.provenance = c.provenance(of: w)
        return try LoadReport(json: r.json())
    }

    func interval(_ startMs: Int64, open: Int, answered: Int, latencies: [UInt64]) -> LoadInterval {
        var i = LoadInterval(startMs: startMs)
        i.open = open
        i.answered = answered
        i.failures = answered > 5 ? ["request.response_timeout": 1] : [:]
        var recorder = LatencyRecorder()
        for v in latencies { recorder.record(microseconds: v) }
        i.setRequestLatency(recorder)
        return i
    }

    @Test func mergeOfPublishedReportsIsExact() throws {
        var a = sampleWorkerReport(seed: 1)
        var b = sampleWorkerReport(seed: 2)
        // Series that overlap in one interval: a peaks at 1000, b at 2000, together 2500 at 2000.
        a.intervals = [interval(1000, open: 1000, answered: 10, latencies: [10, 20, 30]),
                       interval(2000, open: 900, answered: 4, latencies: [40])]
        b.intervals = [interval(2000, open: 1600, answered: 7, latencies: [1000, 2000]),
                       interval(3000, open: 1500, answered: 3, latencies: [5])]
        a.intervalMs = 1000
        b.intervalMs = 1000
        a.memory = MemoryUse(rssBeforeKiB: 20_000, rssAtPeakKiB: 21_000, openAtPeak: 1000)
        b.memory = MemoryUse(rssBeforeKiB: 30_000, rssAtPeakKiB: 32_000, openAtPeak: 1600)
        let merged = try ReportMerge.mergeLoad([("a.json", try published(a)), ("b.json", try published(b))])
        var direct = a
        direct.merge(b)
        #expect(merged.latency.request.count == a.latency.request.count + b.latency.request.count)
        #expect(merged.latency.request.p999 == direct.report.latency.request.p999)
        #expect(merged.latency == direct.report.latency)
        #expect(merged.requests.answered == a.requests.answered + b.requests.answered)
        #expect(merged.outcomes == a.outcomes + b.outcomes)
        #expect(merged.intervals.map(\.startMs) == [1000, 2000, 3000])
        #expect(merged.intervals[1].open == 2500 && merged.intervals[1].answered == 11)
        #expect(merged.intervals[1].failures == ["request.response_timeout": 1])  // b's 7 answered; a's 4 had none
        // The interval's percentiles are taken again from the added histograms: 40, 1000, 2000.
        #expect(merged.intervals[1].requestP50 == 1000)
        #expect(merged.connections.peakOpen == 2500)
        #expect(merged.mergedFrom?.count == 2)
        // User memory is summed over the machines, as over processes (it was dropped by the merge).
        #expect(merged.memory == MemoryUse(rssBeforeKiB: 50_000, rssAtPeakKiB: 53_000, openAtPeak: 2600, processes: 2))
    }

    @Test func refusesWhatCannotBeMerged() throws {
        let load = try published(sampleWorkerReport(seed: 1))
        let echo = try published(sampleWorkerReport(seed: 2), protocol: .echo)
        #expect(throws: ReportMerge.Problem.different(what: "protocol", first: "a.json", firstValue: "ringstorm", path: "b.json", value: "echo")) {
            try ReportMerge.mergeLoad([("a.json", load), ("b.json", echo)])
        }
        let otherTarget = try published(sampleWorkerReport(seed: 2), port: 7300)
        #expect(throws: ReportMerge.Problem.self) { try ReportMerge.mergeLoad([("a.json", load), ("b.json", otherTarget)]) }

        var old = load
        old.latency.request.histogram = nil
        let problem = ReportMerge.Problem.noHistograms(path: "old.json", latency: "request")
        #expect(throws: problem) { try ReportMerge.mergeLoad([("a.json", load), ("old.json", old)]) }
        #expect(problem.description.contains("cannot be merged exactly"))

        #expect(throws: ReportMerge.Problem.notJSON(path: "x.json")) { try ReportMerge.read(Data("{\"latency_us\":".utf8), path: "x.json") }
        #expect(throws: ReportMerge.Problem.notAReport(path: "x.json")) { try ReportMerge.read(Data("{\"a\":1}".utf8), path: "x.json") }
        #expect(throws: ReportMerge.Problem.malformed(path: "x.json", kind: "load", reason: "key backend missing")) {
            try ReportMerge.read(Data("{\"latency_us\":{}}".utf8), path: "x.json")
        }
        #expect(throws: ReportMerge.Problem.unreadable(path: "/nonexistent/r.json", reason: "no such file")) {
            try ReportMerge.read(path: "/nonexistent/r.json")
        }

        // A load report and a server report, through the command's own path.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-merge-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let loadPath = dir.appendingPathComponent("load.json").path
        let serverPath = dir.appendingPathComponent("server.json").path
        try load.json().write(to: URL(fileURLWithPath: loadPath))
        try ServerReport(backend: "uring", durationSeconds: 1).json().write(to: URL(fileURLWithPath: serverPath))
        let mixed = ReportMerge.Problem.mixedKinds(first: loadPath, firstKind: "load", path: serverPath, kind: "server")
        #expect(throws: mixed) { try ReportMerge.merge(paths: [loadPath, serverPath]) }
        #expect(mixed.description.contains("merge load reports with load reports"))
    }

    @Test func shardsSplitEveryTotalWithoutOverlap() throws {
        var c = LoadGenerator.Configuration(target: try SocketAddress(parsing: "127.0.0.1:7200"))
        c.connections = 100
        c.connectRate = 50
        c.firstClient = 7
        c.sources = try SourceAddresses.parse("127.0.0.2-127.0.0.4")
        for n in 1...7 {
            let shards = try (0..<n).map { i in try c.sharded(Shard(index: i, count: n)) }
            #expect(shards.reduce(0) { $0 + $1.connections } == 100)
            #expect(abs(shards.reduce(0) { $0 + $1.connectRate } - 50) < 1e-9)
            // Contiguous, non-overlapping client numbers from 7.
            var next = 7
            for s in shards {
                #expect(s.firstClient == next)
                next += s.connections
                #expect(s.shard?.count == n)
                // Client i of the shard connects from the whole run's round-robin source of its number.
                #expect(s.sources.first == c.sources[s.firstClient % c.sources.count])
            }
        }
        #expect(throws: Shard.Problem.moreShardsThanConnections(shards: 101, connections: 100)) { try c.sharded(Shard(index: 0, count: 101)) }
    }

    @Test func shardArgumentsAndTheirErrors() throws {
        #expect(try Shard(parsing: "2/3") == Shard(index: 2, count: 3))
        #expect(try Shard(parsing: "0/3") == Shard(index: 0, count: 3))
        #expect(throws: Shard.Problem.outOfRange(index: 3, count: 3)) { try Shard(parsing: "3/3") }
        #expect(throws: Shard.Problem.outOfRange(index: -1, count: 3)) { try Shard(parsing: "-1/3") }
        #expect(throws: Shard.Problem.notIndexOfCount("2of3")) { try Shard(parsing: "2of3") }
        #expect(try Shard.automatic(count: nil, environment: ["JOB_COMPLETION_INDEX": "0", "RINGSTORM_SHARD_COUNT": "4"]) == Shard(index: 0, count: 4))
        #expect(try Shard.automatic(count: 5, environment: ["JOB_COMPLETION_INDEX": "4"]) == Shard(index: 4, count: 5))
        #expect(throws: Shard.Problem.indexMissing(nil)) { try Shard.automatic(count: 3, environment: [:]) }
        #expect(throws: Shard.Problem.countMissing(nil)) { try Shard.automatic(count: nil, environment: ["JOB_COMPLETION_INDEX": "1"]) }
        #expect(throws: Shard.Problem.outOfRange(index: 3, count: 3)) { try Shard.automatic(count: 3, environment: ["JOB_COMPLETION_INDEX": "3"]) }
        #expect(Load.text(of: .indexMissing(nil), "auto").contains("JOB_COMPLETION_INDEX"))
        #expect(Load.text(of: .countMissing(nil), "auto").contains("--shard-count"))
    }

    @Test func startAtParsing() {
        let seven: Int64 = 1_796_194_800_000_000_000  // 2026-12-02T07:00:00Z
        #expect(StartTime.parse("2026-12-02T07:00:00Z") == seven)
        #expect(StartTime.parse("2026-12-02T08:00:00.25+01:00") == seven + 250_000_000)
        #expect(StartTime.parse("2026-12-02T06:30:00-00:30") == seven)
        #expect(StartTime.parse("1796194800") == seven)
        #expect(StartTime.parse("1796194800.5") == seven + 500_000_000)
        for bad in ["", "tomorrow", "2026-12-02T07:00:00", "2026-13-02T07:00:00Z", "2026-12-02T07:00:00.Z", "-5", "2026-12-02T07:00:00+1"] {
            #expect(StartTime.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func liveLineRatesAreTheIntervalsOwn() {
        // A run from 10.100 s for 1 s, at 250 ms intervals: the first interval (10.000) holds 150 ms of it.
        var view = LiveView(intervalNanoseconds: 250_000_000, startMs: 10_100, durationNanoseconds: 1_000_000_000, terminal: false)
        var first = LoadInterval(startMs: 10_000)
        first.answered = 300
        first.connects = 15
        first.open = 15
        var second = LoadInterval(startMs: 10_250)
        second.answered = 500
        second.open = 15
        second.failures = ["request.reset": 2]
        let text = view.render([first, second])
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].contains("requests/s 2,000"))  // 300 in 150 ms
        #expect(lines[0].contains("connects/s 100"))
        #expect(lines[1].contains("requests/s 2,000"))  // 500 in 250 ms
        #expect(lines[1].contains("failures: request.reset 2"))
        #expect(lines[1].contains("left 0.6s"))  // its end is 400 ms into the run
        // Already shown: nothing again; the terminal block redraws over itself.
        #expect(view.render([first, second]).isEmpty)
        var terminal = LiveView(intervalNanoseconds: 250_000_000, startMs: 10_100, durationNanoseconds: 1_000_000_000, terminal: true)
        let block1 = terminal.render([first])
        let block2 = terminal.render([first, second])
        #expect(!block1.contains("\u{1b}["))
        #expect(block2.hasPrefix("\u{1b}[\(block1.split(separator: "\n").count)A\u{1b}[J"))
        #expect(terminal.failureTotals == ["request.reset": 2])
    }

    @Test func threeShardsMergedEqualOneRun() async throws {
        // Blocking waits (the runs) on a thread of their own: the cooperative pool stays free.
        try await onThread {
            let server = try RingStormServer(configuration: .testing(.epoll))
            defer { server.stop(); _ = server.wait() }
            var c = LoadGenerator.Configuration(target: server.address)
            c.backend = .epoll
            c.connections = 30
            c.durationNanoseconds = 600_000_000
            c.pacing = .openLoop(intervalNanoseconds: 20_000_000)
            c.reportIntervalNanoseconds = 200_000_000
            c.drainNanoseconds = 300_000_000
            let one = try LoadGenerator(configuration: c).runBlocking()
            c.startAtNanoseconds = wallClockNanoseconds() + 200_000_000
            let shards = try (0..<3).map { i in LoadGenerator(configuration: try c.sharded(Shard(index: i, count: 3))) }
            for s in shards { try s.start() }
            let reports = try shards.enumerated().map { n, s in (path: "shard-\(n).json", report: try LoadReport(json: s.wait().json())) }
            let merged = try ReportMerge.mergeLoad(reports)
            #expect(merged.connections == one.connections)
            #expect(merged.connections.established == 30 && merged.connections.peakOpen == 30)
            #expect(merged.latency.connect.count == one.latency.connect.count)
            #expect(merged.latency.register.count == one.latency.register.count)
            #expect(merged.outcomes == one.outcomes)
            #expect(merged.requests.answered == reports.reduce(0) { $0 + $1.report.requests.answered })
            #expect(merged.latency.request.count == merged.requests.answered)
            #expect(merged.intervals.reduce(0) { $0 + $1.answered } == merged.requests.answered)
            #expect(merged.mergedFrom?.compactMap(\.shard) == ["0/3", "1/3", "2/3"])
            #expect(reports.allSatisfy { $0.report.provenance?.startAtMs != nil })
        }
    }

    /// Both reports' provenance names the kernel features the engines used, as the kernel granted them.
    @Test(arguments: Backend.allCases)
    func provenanceNamesTheBackendFeatures(backend: Backend) async throws {
        try await onThread {
            let server = try RingStormServer(configuration: .testing(backend))
            var c = LoadGenerator.Configuration(target: server.address)
            c.backend = backend
            c.connections = 2
            c.durationNanoseconds = 200_000_000
            let load = try LoadGenerator(configuration: c).runBlocking()
            server.stop()
            let served = server.wait()
            let expected = backend == .uring ? ["multishot_recv", "provided_buffer_ring"] : ["epoll_pwait2", "EPOLLET"]
            for features in [load.provenance?.backendFeatures ?? [], served.provenance?.backendFeatures ?? []] {
                for f in expected { #expect(features.contains(f), "\(features)") }
                #expect(features.contains { $0.hasPrefix("setup:") } == (backend == .uring), "\(features)")
            }
            // Through JSON and back, as `ringstorm merge` reads it.
            #expect(try LoadReport(json: load.json()).provenance?.backendFeatures == load.provenance?.backendFeatures)
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func commandLineRefusals() async throws {
        try await onThread {
            func refused(_ arguments: [String], _ words: [String]) throws {
                let run = try runRingstorm(arguments, seconds: 20)
                #expect(run.status == 2, "\(arguments): \(run.status) \(run.errors)")
                for w in words { #expect(run.errors.contains(w), "\(arguments): '\(w)' not in \(run.errors)") }
                #expect(!run.errors.contains("Error Domain"))
            }
            try refused(["merge"], ["give the reports to merge"])
            try refused(["merge", "/nonexistent/a.json"], ["/nonexistent/a.json: cannot read it (no such file)"])
            try refused(["load", "--report-interval", "5ms"], ["shorter than the generator can keep (10ms)"])
            try refused(["load", "--shard", "3/3"], ["shard 3 is outside 0...2"])
            try refused(["load", "--shard", "auto"], ["JOB_COMPLETION_INDEX"])
            try refused(["load", "--shard", "0/3", "--shard-count", "3"], ["--shard-count is the count for --shard auto"])
            try refused(["load", "--start-at", "tomorrow"], ["--start-at 'tomorrow'", "RFC 3339"])
        }
    }

    @Test func serverSeriesMergeAlignedAndPeakFromTheSeries() {
        var a = ServerReport(backend: "epoll", durationSeconds: 2)
        var b = ServerReport(backend: "epoll", durationSeconds: 2)
        a.peakOpen = 10
        b.peakOpen = 10
        var i = ServerInterval(startMs: 1000); i.open = 10; i.accepted = 10; i.ends = ["closed_by_peer": 1]
        var j = ServerInterval(startMs: 2000); j.open = 2
        var k = ServerInterval(startMs: 2000); k.open = 10; k.accepted = 10; k.ends = ["closed_by_peer": 2]
        a.intervals = [i, j]
        b.intervals = [k]
        a.merge(b)
        #expect(a.intervals.map(\.startMs) == [1000, 2000])
        #expect(a.intervals[1].open == 12 && a.intervals[1].ends == ["closed_by_peer": 2])
        // They peaked apart: 12 at once at most, not 20.
        #expect(a.peakOpen == 12)
    }
}

