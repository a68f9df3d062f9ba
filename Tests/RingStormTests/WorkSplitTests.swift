import Foundation
import Glibc
import Testing
@testable import RingStorm
import RingStormEngine

/// `WorkSplit`: one function divides a run among threads and processes; the parts add up to the whole.
@Suite struct WorkSplitTests {
    func configuration(connections: Int, rate: Double, first: Int = 0, sources: Int = 0) -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        c.connections = connections
        c.connectRate = rate
        c.firstClient = first
        c.sources = (0..<sources).map { SocketAddress(ipv4Value: 0x7F00_0002 + UInt32($0), port: 0) }
        return c
    }

    @Test(arguments: [(1, 1), (10, 3), (7, 7), (100, 8), (5, 64), (1_000_003, 17)])
    func sharesDoNotOverlapAndAddUpExactly(_ connections: Int, _ parts: Int) {
        let c = configuration(connections: connections, rate: 1234.5, first: 40)
        let split = WorkSplit(c, parts: parts)
        #expect(split.parts == min(parts, connections))
        let shares = split.shares
        var next = 40
        for share in shares {
            #expect(share.firstClient == next)  // contiguous: no gap, no overlap
            #expect(share.connections >= 1)
            next += share.connections
        }
        #expect(next == 40 + connections)
        #expect(shares.map(\.connections).max()! - shares.map(\.connections).min()! <= 1)
        let rate = shares.reduce(0.0) { $0 + $1.connectRate }
        #expect(abs(rate - 1234.5) < 1e-6)
    }

    @Test func splittingAShareAgainIsTheSameAsSplittingTheWhole() {
        // Processes, then threads in each: the clients and rates of the threads add up to the whole.
        let whole = configuration(connections: 1001, rate: 900)
        var clients: [Int] = []
        var rate = 0.0
        for process in WorkSplit(whole, parts: 3).shares {
            let part = whole.narrowed(to: process)
            for thread in WorkSplit(part, parts: 4).shares {
                clients += Array(thread.firstClient..<thread.firstClient + thread.connections)
                rate += thread.connectRate
            }
        }
        #expect(clients == Array(0..<1001))
        #expect(abs(rate - 900) < 1e-9)
    }

    @Test func sourcesFollowTheGlobalClientNumber() {
        let whole = configuration(connections: 10, rate: 0, sources: 3)
        for share in WorkSplit(whole, parts: 4).shares {
            for i in 0..<share.connections {
                #expect(share.sources[i % share.sources.count] == whole.sources[(share.firstClient + i) % 3])
            }
        }
    }

    @Test func noSourcesStayNone() {
        #expect(WorkSplit(configuration(connections: 4, rate: 0), parts: 2).share(index: 1).sources.isEmpty)
    }

    /// The connect rate is a total: with two threads, 400 connections at 1000/s take about 0.4 s, not 0.2.
    @Test(arguments: Backend.allCases)
    func connectRateIsATotalOverThreads(_ backend: Backend) throws {
        // Under a sanitizer the instrumented generator cannot keep 1000/s on a loaded machine (TSan
        // reached 330/s alone and a few connections in the whole suite): the rate and the count are
        // divided by the sanitizer's scale, so the ramp still lasts 0.4 s and is within reach, and a
        // per-thread rate would still show as twice the total.
        let connections = Int(400 / sanitizerScale)
        let rate = 1000.0 / sanitizerScale
        let peer = LoadTestPeer(backlog: 1024)
        defer { peer.closeListener() }
        let times = Locked<[Int64]>([])
        let acceptor = Thread { [fd = peer.fd] in
            var accepted: [Int32] = []
            let until = monotonicNanoseconds() + Int64(5e9 * sanitizerScale)
            while accepted.count < connections && monotonicNanoseconds() < until {
                guard LoadTestPeer.waitReadable(fd, milliseconds: 100) else { continue }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { continue }
                // When the handshake completed, by the kernel's clock (TCP_INFO: ms since the last ACK
                // received, the handshake's for a connection that has sent nothing), so a late accept on
                // a busy machine does not stretch the ramp.
                var info = tcp_info()
                var length = socklen_t(MemoryLayout<tcp_info>.size)
                let now = monotonicNanoseconds()
                let got = getsockopt(client, Int32(IPPROTO_TCP), TCP_INFO, &info, &length)
                let at = got == 0 ? now - Int64(info.tcpi_last_ack_recv) * 1_000_000 : now
                times.withLock { $0.append(at) }
                accepted.append(client)
            }
            usleep(200_000)
            for a in accepted { Glibc.close(a) }
        }
        acceptor.start()
        var c = LoadGenerator.Configuration(target: peer.address)
        c.backend = backend
        c.connections = connections
        c.connectRate = rate
        c.threads = 2
        c.pacing = .silent
        // The run lasts until the ramp's end and beyond; an instrumented engine starts slower.
        c.durationNanoseconds = Int64(1e9 * sanitizerScale)
        c.drainNanoseconds = 200_000_000
        let report = try LoadGenerator(configuration: c).runBlocking()
        let accepted = times.withLock { $0 }
        #expect(report.connections.attempted == connections)
        #expect(accepted.count == connections)
        guard accepted.count == connections else { return }
        let span = Double(accepted.max()! - accepted.min()!) / 1e9
        let achieved = Double(connections - 1) / span
        print("ramp \(backend): \(connections) connections in \(String(format: "%.3f", span)) s: \(String(format: "%.0f", achieved))/s (asked \(Int(rate))/s)")
        // Never ahead of a total rate, connection by connection: the k-th handshake is at least
        // (k - 1) / rate (less 10%, and 5 ms for the kernel clock's millisecond) after the first (the
        // two threads may start together). A per-thread rate
        // would run twice as fast; a slow machine only makes it later, so this holds at any speed.
        let sorted = accepted.sorted()
        let ahead = (1..<sorted.count).filter { k in
            Double(sorted[k] - sorted[0]) / 1e9 < Double(k - 1) / rate * 0.9 - 0.005
        }
        #expect(ahead.isEmpty, "\(ahead.count) connections ahead of \(rate)/s in total, the first at index \(ahead.first ?? 0)")
        // And on time, in a normal run. Instrumented on a loaded machine the generator's loop did not
        // keep even a third of the rate (ASan: 152/s of 333/s, the machine's load average 22), which
        // says nothing about the split.
        if activeSanitizer == nil {
            #expect(abs(achieved - rate) / rate < 0.10, "achieved \(achieved)/s, asked \(rate)/s")
        }
    }
}

/// A worker process's configuration travels as one JSON value.
@Suite struct WorkerAssignmentTests {
    @Test func loadConfigurationRoundTrips() throws {
        var c = LoadGenerator.Configuration(target: try SocketAddress(parsing: "[::1]:7200"))
        c.connections = 7
        c.pacing = .openLoop(intervalNanoseconds: 250_000_000)
        c.wireProtocol = .echo
        c.firstMessageSize = 75
        c.sources = [try SocketAddress(parsing: "[::1]:0")]
        c.connectionsLogPath = "/tmp/x.jsonl"
        c.engine.receiveBufferCount = 128
        c.engine.noDelay = false
        let share = WorkSplit(c, parts: 2).share(index: 1)
        let assignment = WorkerAssignment(c.narrowed(to: share), progressIntervalNanoseconds: 5, durationNanoseconds: 9)
        let decoded = try JSONDecoder().decode(WorkerAssignment<LoadGenerator.Configuration>.self,
                                               from: JSONEncoder().encode(assignment))
        let d = decoded.configuration
        #expect(d.target == c.target && d.connections == 3 && d.firstClient == 4)
        #expect(d.pacing == c.pacing && d.wireProtocol == .echo && d.firstMessageSize == 75 && d.sources == c.sources)
        #expect(d.connectionsLogPath == c.connectionsLogPath)
        #expect(d.engine.receiveBufferCount == 128 && d.engine.noDelay == false)
        #expect(decoded.progressIntervalNanoseconds == 5 && decoded.durationNanoseconds == 9)
    }

    @Test func serverConfigurationRoundTrips() throws {
        var c = RingStormServer.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"))
        c.maxFDs = 64
        c.onEMFILE = .spin
        c.registerTimeout = .milliseconds(1500)
        c.engine.batchWaitMicroseconds = 0
        let decoded = try JSONDecoder().decode(RingStormServer.Configuration.self, from: JSONEncoder().encode(c))
        #expect(decoded.listen == c.listen && decoded.maxFDs == 64 && decoded.onEMFILE == .spin)
        #expect(decoded.registerTimeout == .milliseconds(1500) && decoded.engine.batchWaitMicroseconds == 0)
    }
}
