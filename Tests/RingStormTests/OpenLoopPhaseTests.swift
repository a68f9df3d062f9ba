import Foundation
import Testing
@testable import RingStorm
import RingStormEngine
@testable import ringstorm

/// Issue 9, second round: `--interval` spreads the connections' send times over one interval (no
/// bursts), the flat latency tally folds into the HDR recorder exactly, and the send spin flag.
@Suite struct OpenLoopPhaseTests {
    /// `-c 100 --interval 100ms`: client g first sends at a time ≡ g ms (mod 100 ms), at or after it
    /// connected and less than one interval later; all of them together send one request every 1 ms.
    @Test func intervalSendsAreSpreadOverOneInterval() {
        let pacing = LoadGenerator.Pacing.openLoop(intervalNanoseconds: 100_000_000)
        let now: Int64 = 7_000_000_321
        var times: [Int64] = []
        for g in 0..<100 {
            let connected = now + Int64(g) * 913  // connections established together, a little apart
            let first = pacing.firstSendTime(client: g, runConnections: 100, now: connected)!
            #expect(first >= connected && first < connected + 100_000_000)
            #expect(first % 100_000_000 == Int64(g) * 1_000_000)
            times += [first, first + 100_000_000]
        }
        let window = times.sorted().filter { $0 >= now + 100_000_000 && $0 < now + 200_000_000 }
        #expect(window.count == 100)
        for (a, b) in zip(window, window.dropFirst()) { #expect(b - a == 1_000_000) }
        // Due exactly now: sends now, not an interval later.
        #expect(pacing.firstSendTime(client: 0, runConnections: 100, now: 300_000_000) == 300_000_000)
        // Not evenly divisible: 3 clients over 10 ns sit at 0, 3 and 6 ns.
        let small = LoadGenerator.Pacing.openLoop(intervalNanoseconds: 10)
        #expect((0..<3).map { small.firstSendTime(client: $0, runConnections: 3, now: 20)! } == [20, 23, 26])
        // The closed loop and silent clients send at once: no grid.
        #expect(LoadGenerator.Pacing.closedLoop(pipeline: 1).firstSendTime(client: 3, runConnections: 10, now: 5) == nil)
    }

    /// client × interval past Int64: a 1 h interval over 5,000,000 clients still gives phases in range.
    @Test func phaseMathDoesNotOverflow() {
        let hour: Int64 = 3_600_000_000_000
        let pacing = LoadGenerator.Pacing.openLoop(intervalNanoseconds: hour)
        let first = pacing.firstSendTime(client: 4_999_999, runConnections: 5_000_000, now: 0)!
        #expect(first == hour - hour / 5_000_000)
    }

    /// Threads and processes get parts of the run; each part keeps the whole run's connection count,
    /// so a client's send times are the same whichever part runs it, and the parts interleave.
    @Test func partsKeepTheWholeRunsGrid() throws {
        var whole = LoadGenerator.Configuration(target: try SocketAddress(parsing: "127.0.0.1:7200"))
        whole.connections = 10
        whole.pacing = .openLoop(intervalNanoseconds: 10_000_000)
        let processPart = whole.narrowed(to: WorkSplit(whole, parts: 2).share(index: 1))
        #expect(processPart.runConnections == 10 && processPart.connections == 5 && processPart.firstClient == 5)
        let threadPart = processPart.narrowed(to: WorkSplit(processPart, parts: 2).share(index: 1))
        #expect(threadPart.runConnections == 10 && threadPart.firstClient == 8)
        let now: Int64 = 123_456_789
        for g in [5, 8, 9] {
            #expect(threadPart.firstSendTime(client: g, now: now) == whole.firstSendTime(client: g, now: now))
        }
        #expect(whole.firstSendTime(client: 8, now: 0) == 8_000_000)
        // A worker process's assignment carries it (JSON), and an older assignment without it reads.
        let assignment = try JSONDecoder().decode(LoadGenerator.Configuration.self, from: JSONEncoder().encode(threadPart))
        #expect(assignment.runConnections == 10)
    }
}

@Suite struct LatencyTallyTests {
    /// Folding the flat tally gives the recorder that recording each value would have given: the same
    /// buckets, count, percentiles, exact minimum and maximum, clamped values; folding twice adds.
    @Test func foldEqualsRecordingEachValue() {
        var values: [Int64] = [-5, 0, 1, 999, 1_000, 1_001, 2_047_000, 2_048_499, 61_000_000_000, 123_456_789]
        var seed: UInt64 = 42
        for _ in 0..<5_000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            values.append(Int64(seed >> 40) % 90_000_000)  // up to 90 ms in ns
        }
        let tally = LatencyTally()
        var direct = LatencyRecorder()
        for v in values {
            tally.record(nanoseconds: v)
            direct.record(nanoseconds: v)
        }
        var folded = LatencyRecorder()
        tally.fold(into: &folded)
        #expect(tally.isEmpty)
        #expect(folded.snapshot == direct.snapshot)
        #expect(folded.summary == direct.summary)
        #expect(folded.clampedCount == 1)
        tally.record(nanoseconds: 10_000)
        direct.record(nanoseconds: 10_000)
        tally.fold(into: &folded)
        #expect(folded.snapshot == direct.snapshot)
        // Every bucket's lowest value maps back to that bucket.
        for i in stride(from: 0, to: HdrHistogramEncoding.countsIndex(of: 60_000_000), by: 37) {
            #expect(HdrHistogramEncoding.countsIndex(of: HdrHistogramEncoding.value(atIndex: i)) == i)
        }
    }
}

@Suite struct SendSpinTests {
    @Test func sendSpinFlag() throws {
        #expect(try Load.parse(["--interval", "10ms"]).makeConfiguration().sendSpinNanoseconds
                == LoadGenerator.Configuration.defaultSendSpinNanoseconds)
        #expect(try Load.parse(["--interval", "10ms", "--send-spin", "30us"]).makeConfiguration().sendSpinNanoseconds == 30_000)
        #expect(try Load.parse(["--rate", "100", "--send-spin", "0"]).makeConfiguration().sendSpinNanoseconds == 0)
        #expect(throws: (any Error).self) { try Load.parse(["--interval", "10ms", "--send-spin", "5ms"]).makeConfiguration() }
    }

    /// The wait is decided in one place, `EngineCore.waitNanoseconds`: with a spin margin it sleeps until
    /// the margin before the next timer, and within the margin it spins until the timer is due and
    /// returns 0 (poll without blocking), so the timer fires at once.
    @Test func theCoreSleepsUntilTheMarginThenSpins() {
        var configuration = EngineConfiguration()
        configuration.spinNanoseconds = 200_000
        let core = EngineCore(backend: .epoll, configuration: configuration)
        core.schedule(afterNanoseconds: 50_000_000, token: 1)
        let far = core.waitNanoseconds(callerTimeout: nil)!
        #expect(far <= 50_000_000 - 200_000 && far > 40_000_000)
        #expect(core.waitNanoseconds(callerTimeout: 1_000) == 1_000)  // a sooner caller timeout wins
        let core2 = EngineCore(backend: .epoll, configuration: configuration)
        let now = monotonicNanoseconds()
        core2.schedule(afterNanoseconds: 100_000, token: 1)  // within the margin
        #expect(core2.waitNanoseconds(callerTimeout: nil) == 0)
        #expect(monotonicNanoseconds() >= now + 100_000)  // spun until it was due
        configuration.spinNanoseconds = 0
        let core3 = EngineCore(backend: .epoll, configuration: configuration)
        core3.schedule(afterNanoseconds: 100_000, token: 1)
        #expect(core3.waitNanoseconds(callerTimeout: nil)! > 0)  // off: sleeps the whole wait
    }
}
