import Foundation
import Testing
@testable import RingStorm
import RingStormEngine
@testable import ringstorm

/// Issue 9: sends on time (wake-ups to the nanosecond), `--rate`, send lag apart from response time,
/// the whole distribution (`--latency`, `--hgrm`, mean and standard deviation) and the generator's health.
@Suite struct DeadlineWheelTests {
    /// Wake-ups fire at their own time, never rounded to the end of a tick, and never early.
    @Test func wakeUpsFireAtTheirOwnTimeNotATickEnd() {
        let ms: Int64 = 1_000_000
        let start: Int64 = 1_000 * ms
        let wheel = DeadlineWheel(clients: 4, tickNanoseconds: ms, now: start)
        wheel.wake(0, at: start + 250_000)       // 0.25 ms: inside the current tick
        wheel.wake(1, at: start + 3 * ms + 17)   // 3 ms + 17 ns
        wheel.wake(2, at: start + 9_000 * ms)    // beyond one lap of 4096 buckets
        #expect(wheel.nextDue() == start + 250_000)
        var fired: [Int] = []
        wheel.advance(to: start + 249_999) { fired.append($0) }
        #expect(fired.isEmpty)  // 1 ns early: not yet
        wheel.advance(to: start + 250_000) { fired.append($0) }
        #expect(fired == [0])
        #expect(wheel.nextDue() == start + 3 * ms + 17)  // exact, not the end of its millisecond
        wheel.advance(to: start + 3 * ms + 16) { fired.append($0) }
        #expect(fired == [0])
        wheel.advance(to: start + 3 * ms + 17) { fired.append($0) }
        #expect(fired == [0, 1])
        // The far one: found after a lap, at its own time.
        var due = wheel.nextDue()!
        while due < start + 9_000 * ms {
            wheel.advance(to: due) { fired.append($0) }
            due = wheel.nextDue()!
        }
        #expect(due == start + 9_000 * ms)
        wheel.advance(to: due) { fired.append($0) }
        #expect(fired == [0, 1, 2])
        #expect(wheel.nextDue() == nil)
    }

    /// An earlier wake-up replaces a later one (which turns stale); a cancelled one never fires; a
    /// client woken in `body` for a later time fires at that later time.
    @Test func staleAndCancelledEntriesDoNotFire() {
        let ms: Int64 = 1_000_000
        let wheel = DeadlineWheel(clients: 3, tickNanoseconds: ms, now: 0)
        wheel.wake(0, at: 5 * ms)
        wheel.wake(0, at: 2 * ms + 5)  // earlier: the 5 ms entry is stale
        wheel.wake(1, at: 2 * ms)
        wheel.cancel(1)
        var fired: [(Int, Int64)] = []
        wheel.advance(to: 2 * ms + 5) { c in
            fired.append((c, 2 * ms + 5))
            wheel.wake(c, at: 4 * ms + 1)
        }
        #expect(fired.map(\.0) == [0])
        #expect(wheel.nextDue() == 4 * ms + 1)
        wheel.advance(to: 10 * ms) { c in fired.append((c, 10 * ms)) }
        #expect(fired.map(\.0) == [0, 0])  // once at 4 ms + 1; the stale 5 ms entry fired nothing
    }

    /// Many clients due in one millisecond fire in time order, each at or after its time.
    @Test func manyInOneTickFireInTimeOrder() {
        let wheel = DeadlineWheel(clients: 100, tickNanoseconds: 1_000_000, now: 0)
        for c in 0..<100 { wheel.wake(c, at: 1_000_000 + Int64((c * 7919) % 100) * 10_000) }
        var order: [Int64] = []
        var now: Int64 = 0
        while let due = wheel.nextDue() {
            now = due
            wheel.advance(to: now) { c in order.append(1_000_000 + Int64((c * 7919) % 100) * 10_000) }
            #expect(order.last.map { $0 <= now } ?? true)
        }
        #expect(order.count == 100)
        #expect(order == order.sorted())
    }

    /// Bursts of wake-ups landing in ever new milliseconds leave no big storage behind: before the cap,
    /// each bucket the scratch storage was swapped into kept the burst's capacity (here 2,000 buckets
    /// × 1,000 entries, 32 MB).
    @Test func burstsDoNotLeaveStorageInEveryBucket() {
        let ms: Int64 = 1_000_000
        let wheel = DeadlineWheel(clients: 1_000, tickNanoseconds: ms, now: 0)
        var fired = 0
        for round in 1...2_000 {
            for c in 0..<1_000 { wheel.wake(c, at: Int64(round) * ms * 2) }
            while let due = wheel.nextDue() { wheel.advance(to: due) { _ in fired += 1 } }
        }
        #expect(fired == 2_000_000)
        #expect(wheel.retainedCapacity < 4_096 * DeadlineWheel.keptCapacity + 4_000, "kept \(wheel.retainedCapacity) entries")
    }
}

@Suite struct RequestRateTests {
    func configuration(connections: Int, rate: Double) -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        c.connections = connections
        c.pacing = .rate(requestsPerSecond: rate, connections: connections)
        return c
    }

    /// The parts' request rates add up to the whole, for threads and for processes then threads.
    @Test(arguments: [(1, 1), (100, 3), (1001, 7), (10, 10)])
    func sharesOfTheRateAddUpToTheWhole(_ connections: Int, _ parts: Int) {
        let whole = configuration(connections: connections, rate: 12_345)
        var sum = 0.0
        for share in WorkSplit(whole, parts: parts).shares {
            let part = whole.narrowed(to: share)
            // The part keeps the whole run's pacing: every connection's schedule is the whole run's.
            #expect(part.pacing == whole.pacing)
            for thread in WorkSplit(part, parts: 2).shares { sum += thread.requestRate }
        }
        #expect(abs(sum - 12_345) < 1e-6)
    }

    /// Every connection sends every N/R; client g sits at g/R on the grid, so all of them together
    /// send one request every 1/R, evenly spaced, whatever moment each connected.
    @Test func sendsAreEvenlySpacedOverAllConnections() {
        let pacing = LoadGenerator.Pacing.rate(requestsPerSecond: 1000, connections: 100)
        #expect(pacing.openLoopIntervalNanoseconds == 100_000_000)  // 100 connections / 1000 per s
        let now: Int64 = 5_000_000_123
        var times: [Int64] = []
        for g in 0..<100 {
            let first = pacing.firstSendTime(client: g, now: now + Int64(g) * 777)!
            #expect(first >= now + Int64(g) * 777)
            #expect(first < now + Int64(g) * 777 + 100_000_000)
            times.append(first)
            times.append(first + 100_000_000)
        }
        let sorted = times.sorted()
        let window = sorted.filter { $0 >= now + 100_000_000 && $0 < now + 200_000_000 }
        #expect(window.count == 100)
        for (a, b) in zip(window, window.dropFirst()) { #expect(b - a == 1_000_000) }  // 1 ms apart, exactly
        #expect(LoadGenerator.Pacing.openLoop(intervalNanoseconds: 5).firstSendTime(client: 3, now: 10) == nil)
    }

    @Test func aRateMustBePositive() {
        let c = configuration(connections: 10, rate: 0)
        #expect(throws: LoadError.rateNotPositive(0)) { try LoadGenerator(configuration: c).validate() }
        #expect(LoadError.rateNotPositive(-1).commandLineText.contains("--rate must be more than 0"))
    }

    @Test func rateAndIntervalExcludeEachOther() throws {
        #expect(throws: (any Error).self) { try Load.parse(["--rate", "100", "--interval", "1s"]).makeConfiguration() }
        do {
            _ = try Load.parse(["--rate", "100", "--interval", "1s"]).makeConfiguration()
        } catch {
            #expect("\(error)" == Load.rateAndIntervalText)
            #expect("\(error)".contains("pick one"))
        }
        do {
            _ = try Load.parse(["--rate", "100", "--closed-loop"]).makeConfiguration()
            Issue.record("--rate with --closed-loop was accepted")
        } catch {
            #expect("\(error)".contains("--rate (open loop) and --closed-loop exclude each other"))
        }
        let c = try Load.parse(["-c", "50", "--rate", "2000"]).makeConfiguration()
        #expect(c.pacing == .rate(requestsPerSecond: 2000, connections: 50))
        #expect(c.pacing.openLoopIntervalNanoseconds == 25_000_000)
    }
}

@Suite struct DistributionTests {
    /// Mean and standard deviation from the histogram, to 0.1 µs, in the summary and its JSON; older
    /// JSON without them still reads.
    @Test func meanAndStandardDeviation() throws {
        var r = LatencyRecorder()
        for v: UInt64 in [100, 200, 300, 400] { r.record(microseconds: v) }
        let s = r.summary
        #expect(abs(s.mean - 250) < 0.5)
        #expect(abs(s.standardDeviation - 111.8) < 0.5)  // population standard deviation
        let json = try JSONEncoder().encode(s)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("\"mean\"") && text.contains("\"stddev\""))
        #expect(try JSONDecoder().decode(LatencySummary.self, from: json) == s)
        let old = #"{"count":1,"p50":5,"p90":5,"p99":5,"p999":5,"max":5}"#
        #expect(try JSONDecoder().decode(LatencySummary.self, from: Data(old.utf8)).mean == 0)
    }

    /// The .hgrm text parses back: a header, rows of value (ms) / percentile / total count /
    /// 1/(1-percentile) with counts rising to the total, and the mean/max footer.
    @Test func hgrmParsesBack() {
        var r = LatencyRecorder()
        for v in 1...1000 { r.record(microseconds: UInt64(v) * 10) }
        let text = r.percentileDistribution()
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0].split(separator: " ").map(String.init) == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"])
        var rows: [(value: Double, percentile: Double, count: Int)] = []
        for line in lines.dropFirst() where !line.hasPrefix("#") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 3 else { continue }
            rows.append((Double(fields[0])!, Double(fields[1])!, Int(fields[2])!))
        }
        #expect(rows.count > 20)
        #expect(rows.map(\.count) == rows.map(\.count).sorted())
        #expect(rows.last!.count == 1000)
        #expect(rows.last!.percentile == 1.0)
        #expect(abs(rows.last!.value - 10.0) < 0.02)  // 10,000 µs in milliseconds
        let median = rows.first { $0.percentile >= 0.5 }!
        #expect(abs(median.value - 5.0) < 0.01)
        #expect(lines.contains { $0.hasPrefix("#[Mean") })
        #expect(lines.contains { $0.hasPrefix("#[Max") && $0.contains("1000") })
    }

    /// Send lag and response time are histograms of the worker report: they merge like the others.
    @Test func sendLagAndResponseMergeAcrossWorkers() throws {
        var a = LoadWorkerReport(backend: .uring)
        var b = LoadWorkerReport(backend: .uring)
        a.latency.sendLag.record(microseconds: 10)
        b.latency.sendLag.record(microseconds: 3000)
        a.latency.response.record(microseconds: 90)
        let merged = a + b
        #expect(merged.latency.sendLag.count == 2)
        #expect(merged.report.latency.sendLag.max >= 2990)
        #expect(merged.report.latency.response.count == 1)
        let back = try LoadWorkerReport(json: merged.json())
        #expect(back == merged)
        let text = merged.report.text
        #expect(text.contains("  send lag"))
        #expect(text.contains("  response"))
    }
}

@Suite struct GeneratorWarningTests {
    @Test func aHealthyGeneratorWarnsOfNothing() {
        var g = LoadReport.Generator()
        g.maxWorkerCPU = 0.3
        g.ticks = 100
        #expect(g.warnings(sendLag: LatencySummary(count: 10, p50: 5, p99: 40)).isEmpty)
    }

    /// Each warning says what it distorts and names the fix.
    @Test func eachBottleneckIsNamedWithItsFix() {
        var g = LoadReport.Generator()
        g.maxWorkerCPU = 0.97
        g.completionQueueOverflows = 3
        g.bufferExhaustions = 2
        let warnings = g.warnings(sendLag: LatencySummary(count: 10, p50: 5, p99: 4_000))
        #expect(warnings.count == 4)
        #expect(warnings[0].contains("send lag p99 4,000 µs") && warnings[0].contains("--threads or --processes"))
        #expect(warnings[0].contains("includes its own delay"))
        #expect(warnings[1].contains("97% of a core") && warnings[1].contains("--threads"))
        #expect(warnings[2].contains("overflowed 3 times") && warnings[2].contains("fewer connections"))
        #expect(warnings[3].contains("ENOBUFS") && warnings[3].contains("2 times"))
    }

    /// A stall that is a long connect call is blamed on the port search, with --source as the fix.
    @Test func aStallInConnectNamesThePortSearch() {
        var g = LoadReport.Generator()
        g.recordTick(due: 0, now: 4_200_000_000)
        g.recordConnectCall(nanoseconds: 4_100_000_000)
        let text = g.warnings(sendLag: LatencySummary()).joined()
        #expect(text.contains("4.200 s late"))
        #expect(text.contains("stalled for 4.100 s in connect") && text.contains("--source"))
        var merged = LoadReport.Generator()
        merged.merge(g)
        merged.merge(g)
        #expect(merged.maxConnectCallMicroseconds == 4_100_000 && merged.connectCallMicroseconds == 8_200_000)
    }
}
