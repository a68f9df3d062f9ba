import Foundation
import Glibc
import Testing
@testable import RingStorm
import RingStormEngine

/// The connect ramp (issue 11): port slices per worker, the spacing of connects, the fallback of the
/// per-socket port range, the generator's own port pool, and the user memory the reports carry.
@Suite struct RampTests {
    func configuration(connections: Int, ports: ClosedRange<Int>) -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        c.connections = connections
        c.localPortRange = ports
        return c
    }

    // MARK: Port slices (WorkSplit)

    @Test(arguments: [(32_768...60_999, 1), (32_768...60_999, 6), (32_768...60_999, 7), (1000...1009, 3), (5...5, 1)])
    func portSlicesAreDisjointAndCoverTheRange(_ ports: ClosedRange<Int>, _ parts: Int) {
        let split = WorkSplit(configuration(connections: 100_000, ports: ports), parts: parts)
        let slices = split.shares.map(\.localPorts)
        var next = ports.lowerBound
        for slice in slices {
            #expect(slice.lowerBound == next)  // contiguous: no gap, no overlap
            next = slice.upperBound + 1
        }
        #expect(next == ports.upperBound + 1)
        #expect(slices.map(\.count).max()! - slices.map(\.count).min()! <= 1)
    }

    @Test func splittingAProcessSliceAmongThreadsStaysInsideIt() {
        let whole = configuration(connections: 60_000, ports: 32_768...60_999)
        var seen = Set<Int>()
        for process in WorkSplit(whole, parts: 3).shares {
            let narrowed = whole.narrowed(to: process)
            #expect(narrowed.localPortRange == process.localPorts)
            for thread in WorkSplit(narrowed, parts: 2).shares {
                #expect(process.localPorts.contains(thread.localPorts.lowerBound))
                #expect(process.localPorts.contains(thread.localPorts.upperBound))
                for p in thread.localPorts { #expect(seen.insert(p).inserted) }
            }
        }
        #expect(seen.count == 60_999 - 32_768 + 1)
    }

    @Test func fewerPortsThanPartsShareTheWholeRange() {
        let split = WorkSplit(configuration(connections: 10, ports: 100...101), parts: 5)
        #expect(split.shares.allSatisfy { $0.localPorts == 100...101 })
    }

    @Test func theSystemRangeIsParsed() {
        #expect(EphemeralPorts.parse("32768\t60999\n") == 32_768...60_999)
        #expect(EphemeralPorts.parse("1024 65535") == 1024...65_535)
        #expect(EphemeralPorts.parse("60999\t32768\n") == nil)
        #expect(EphemeralPorts.parse("garbage") == nil)
        #expect(EphemeralPorts.system.count > 0)
    }

    // MARK: Connect spacing (ConnectPacer)

    @Test func connectsAreSpacedEvenlyAtTheRate() {
        var pacer = ConnectPacer(ratePerSecond: 20_000, now: 0)
        #expect(pacer.intervalNanoseconds == 50_000)
        #expect(pacer.burst == 20)  // a millisecond's worth
        // Waking every 100 µs: two connects each time, never a burst.
        var started = 0
        var now: Int64 = 0
        while now < 10_000_000 {
            let n = pacer.due(now: now, queued: 1_000_000)
            #expect(n <= 3)
            started += n
            now = pacer.nextWake(now: now)
        }
        #expect(started >= 199 && started <= 201)  // 10 ms at 20,000/s
    }

    @Test func aLateWakeUpCatchesUpInSteps() {
        var pacer = ConnectPacer(ratePerSecond: 20_000, now: 0)
        #expect(pacer.due(now: 0, queued: 10_000) == 1)
        // 10 ms late: 200 fell due, but at most a millisecond's worth at once.
        #expect(pacer.due(now: 10_000_000, queued: 10_000) == 20)
        #expect(pacer.nextWake(now: 10_000_000) == 10_000_000 + ConnectPacer.minimumGapNanoseconds)
        var total = 21
        var now: Int64 = 10_000_000
        for _ in 0..<20 { now += 100_000; total += pacer.due(now: now, queued: 10_000) }
        #expect(total == Int(now / 50_000) + 1)  // caught up with the schedule
    }

    @Test func idleTimeIsNotSavedUp() {
        var pacer = ConnectPacer(ratePerSecond: 1000, now: 0)
        #expect(pacer.due(now: 0, queued: 1) == 1)
        pacer.idle(now: 5_000_000_000)  // nothing queued for 5 s
        #expect(pacer.due(now: 5_000_000_000, queued: 100) == 1)
        #expect(pacer.due(now: 5_000_000_000, queued: 100) == 0)
        // A schedule far behind forgets all but `maxLag` of it.
        var lagging = ConnectPacer(ratePerSecond: 1000, now: 0)
        var n = 0
        while true { let d = lagging.due(now: 10_000_000_000, queued: 1_000_000); if d == 0 { break }; n += d }
        #expect(n == Int(ConnectPacer.maxLagNanoseconds / 1_000_000) + 1)
    }

    @Test func noRateMeansAllAtOnce() {
        var pacer = ConnectPacer(ratePerSecond: 0, now: 0)
        #expect(pacer.due(now: 0, queued: 5000) == 5000)
        #expect(pacer.due(now: 0, queued: 0) == 0)
    }

    // MARK: The per-socket range and its fallback

    @Test func thePortRangeOptionAndItsFallback() {
        #expect(LocalPortRange.optionValue(nil) == 0)
        #expect(LocalPortRange.optionValue(40_000...40_999) == 40_000 | 40_999 << 16)
        #expect(LocalPortRange.isUnsupported(Errno(rawValue: ENOPROTOOPT)))
        #expect(LocalPortRange.isUnsupported(Errno(rawValue: EINVAL)))
        #expect(!LocalPortRange.isUnsupported(Errno(rawValue: EBADF)))
        #expect(!LocalPortRange.isUnsupported(.tooManyOpenFiles))
    }

    @Test func engineConfigurationCarriesTheRangeToWorkerProcesses() throws {
        var e = EngineConfiguration()
        e.localPortRange = 40_000...40_999
        let back = try JSONDecoder().decode(EngineConfiguration.self, from: JSONEncoder().encode(e))
        #expect(back.localPortRange == 40_000...40_999)
        let none = try JSONDecoder().decode(EngineConfiguration.self, from: JSONEncoder().encode(EngineConfiguration()))
        #expect(none.localPortRange == nil)
    }

    // MARK: The generator's own ports (PortPool)

    @Test func portsComeBackInTheOrderTheyWereFreed() {
        let pool = PortPool(sources: 2, ports: 100...102)
        defer { pool.deallocate() }
        #expect(pool.take(source: 0) == 100)
        #expect(pool.take(source: 0) == 101)
        #expect(pool.take(source: 1) == 100)  // each source address has the whole slice
        #expect(pool.take(source: 0) == 102)
        #expect(pool.take(source: 0) == nil)  // used up: the kernel picks
        pool.give(101, source: 0)
        pool.give(100, source: 0)
        #expect(pool.take(source: 0) == 101)  // freed longest ago first
        #expect(pool.take(source: 0) == 100)
        #expect(pool.free(source: 1) == 2)
    }

    @Test(arguments: [(Backend.uring, LoadGenerator.LocalPorts.assign), (.uring, .range), (.epoll, .assign), (.epoll, .kernel)])
    func connectionsComeFromTheWorkersSlice(_ backend: Backend, _ ports: LoadGenerator.LocalPorts) throws {
        let peer = LoadTestPeer(backlog: 64)  // never accepts: connections stay in its queue
        defer { peer.finish() }
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: peer.port))
        c.backend = backend
        c.connections = 20
        c.threads = 2
        c.pacing = .silent
        c.localPorts = ports
        c.localPortRange = 47_100...47_299
        c.connectRate = 10_000
        c.durationNanoseconds = 300_000_000
        c.drainNanoseconds = 100_000_000
        c.engine.receiveBufferCount = 64
        let generator = LoadGenerator(configuration: c)
        try generator.start()
        // While they are open: each local port is in the slice (assign, range) and used once.
        var local: [Int] = []
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            local = Self.localPorts(to: peer.port)
            if local.count >= 20 { break }
            usleep(20_000)
        }
        let report = generator.wait()
        #expect(report.connections.established == 20)
        #expect(Set(local).count == local.count)
        if ports != .kernel { #expect(local.allSatisfy { (47_100...47_299).contains($0) }, "\(local)") }
        #expect(report.memory != nil)
    }

    /// Local ports of this process's TCP sockets connected to `port` on loopback (`/proc/net/tcp`).
    static func localPorts(to port: UInt16) -> [Int] {
        guard let text = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return [] }
        let remote = String(format: "0100007F:%04X", port)
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: " ")
            guard f.count > 3, f[2] == remote, f[3] == "01" else { return nil }  // 01: ESTABLISHED
            return Int(f[1].split(separator: ":")[1], radix: 16)
        }
    }

    // MARK: User memory in the reports

    @Test func memoryPerConnectionIsTheGrowthOverTheOpenConnections() throws {
        #expect(MemoryUse.parseStatm("12345 2000 300 1 0 500 0\n", pageSize: 4096) == 8000)
        #expect(MemoryUse.parseStatm("", pageSize: 4096) == nil)
        var a = MemoryUse(rssBeforeKiB: 20_000, rssAtPeakKiB: 21_000, openAtPeak: 1024)
        #expect(a.bytesPerConnection == 1000)
        a.merge(MemoryUse(rssBeforeKiB: 20_000, rssAtPeakKiB: 23_000, openAtPeak: 1024))
        #expect(a.bytesPerConnection == 2000 && a.processes == 2)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(a)) as? [String: Any]
        #expect(json?["user_bytes_per_connection"] as? Double == 2000)
        #expect(try JSONDecoder().decode(MemoryUse.self, from: JSONEncoder().encode(a)) == a)
        #expect(a.text.hasPrefix("user RSS 2,000 B per connection"))
        #expect(MemoryUse(rssBeforeKiB: 1, rssAtPeakKiB: 1, openAtPeak: 0).bytesPerConnection == nil)
        #expect(MemoryUse.residentKiB() ?? 0 > 0)
    }
}
