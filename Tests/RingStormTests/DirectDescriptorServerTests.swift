import Foundation
import Glibc
import RingStorm
import RingStormEngine
import Testing

extension RingStormServer.Configuration {
    /// `testing(.uring)` with direct descriptors for accepted sockets.
    static func testingDirect(_ kind: ServerProtocolKind = .ringstorm) -> Self {
        var c = Self.testing(.uring)
        c.protocol = kind
        c.engine.uringFeatures = [.incrementalBuffers, .directDescriptors]
        return c
    }
}

/// `--uring-features direct-descriptors` end to end: the server's connections live in the ring's file
/// table, and what the server does with them (answers, idle closes, resets) is unchanged.
@Suite struct DirectDescriptorServerTests {
    /// The feature is in use (kernel 6.7+ has all it needs), or a note says why not.
    private func requireDirect(_ server: RingStormServer) async throws -> Bool {
        // Published with the workers' first snapshot (every tick).
        try await waitUntil { !server.progress.engine.features.isEmpty }
        let engine = server.progress.engine
        let inUse = engine.features.contains { $0.hasPrefix("direct_descriptors(") }
        let release = ProcessInfo.processInfo.operatingSystemVersion
        if release.majorVersion > 6 || (release.majorVersion == 6 && release.minorVersion >= 7) {
            try #require(inUse, "direct descriptors not in use on a 6.7+ kernel: \(engine.notes)")
        } else if !inUse {
            #expect(engine.notes.contains { $0.contains("direct descriptors") })
        }
        return inUse
    }

    /// An echo server answers every message of every client, in order.
    @Test func echoAnswersEveryMessageOfEveryClient() async throws {
        let server = try RingStormServer(configuration: .testingDirect(.echo))
        guard try await requireDirect(server) else { server.stop(); _ = server.wait(); return }
        let port = server.address.port
        let clients = 24, messages = 40
        try await onThread {
            let peers = try (0..<clients).map { _ in try ServerTestClient(port: port) }
            for m in 0..<messages {
                for (c, peer) in peers.enumerated() {
                    let message = [UInt8](repeating: UInt8(truncatingIfNeeded: c &* 7 &+ m), count: 1 + (c * 13 + m * 29) % 300)
                    peer.send(bytes: message)
                    var echoed: [UInt8] = []
                    while echoed.count < message.count {
                        guard case .data(let bytes) = peer.receive(count: message.count - echoed.count) else {
                            throw ServerTestError("client \(c), message \(m): no echo")
                        }
                        echoed += bytes
                    }
                    #expect(echoed == message, "client \(c), message \(m)")
                }
            }
        }
        try await waitUntil { server.progress.report.closedByPeer == clients }
        server.stop()
        let report = server.wait()
        #expect(report.accepted == clients)
        #expect(report.requests >= clients * messages)
        #expect(report.directTableFull == 0)
        #expect(report.acceptErrors.isEmpty)
    }

    /// The idle deadline closes with FIN, a connection that never sent anything too.
    @Test func idleTimeoutClosesWithFIN() async throws {
        var configuration = RingStormServer.Configuration.testingDirect(.echo)
        configuration.idleTimeout = .milliseconds(400)
        let server = try RingStormServer(configuration: configuration)
        guard try await requireDirect(server) else { server.stop(); _ = server.wait(); return }
        let port = server.address.port
        try await onThread {
            let client = try ServerTestClient(port: port)
            let silent = try ServerTestClient(port: port)
            for round in 1...2 {
                usleep(200_000)
                let message = [UInt8](repeating: UInt8(round), count: 64)
                client.send(bytes: message)
                guard case .data(let bytes) = client.receive(), bytes == message else { throw ServerTestError("no echo") }
            }
            let start = monotonicNanoseconds()
            #expect(client.receive() == .endOfStream)  // FIN, not RST
            let waited = Double(monotonicNanoseconds() - start) / 1e9
            #expect(waited >= 0.25 && waited < 2 * sanitizerScale, "closed after \(waited) s")
            #expect(silent.receive() == .endOfStream)
        }
        try await waitUntil { server.progress.report.idleClosed == 2 }
        server.stop()
        let report = server.wait()
        #expect(report.idleClosed == 2)
        #expect(report.resetByPeer == 0)
    }

    /// An abortive close: a client that sends and never reads is closed at the idle deadline, cannot
    /// drain, and is reset at the close deadline (`SO_LINGER` through the ring): it reads what was
    /// queued for it, then ECONNRESET, not FIN.
    // Skipped under ThreadSanitizer, as `HostilePeerTests.neverReadingClientsAreReleasedAtTheCloseDeadline`:
    // instrumented, the server echoes too slowly for the client to fill its send queue, so the close
    // drains (FIN) and nothing is left to time out (seen in the full TSan run).
    @Test(.enabled(if: activeSanitizer != "thread", "too slow to fill a send queue under ThreadSanitizer"))
    func drainTimeoutResetsTheClient() async throws {
        var configuration = RingStormServer.Configuration.testingDirect(.echo)
        // Longer than any pause of the client's sending on a loaded machine: a pause past it closes the
        // connection before the server's queue is full, and that close drains (FIN, no drain timeout), as
        // the full address-sanitizer run once saw with 600 ms.
        configuration.idleTimeout = .milliseconds(Int64(2000 * sanitizerScale))
        configuration.engine.closeTimeoutNanoseconds = 300_000_000
        configuration.engine.maxPendingBytesPerConnection = 64 << 10
        let server = try RingStormServer(configuration: configuration)
        guard try await requireDirect(server) else { server.stop(); _ = server.wait(); return }
        let port = server.address.port
        let end = try await onThread { () -> ServerTestReceived in
            let client = try ServerTestClient(port: port)
            let chunk = [UInt8](repeating: 9, count: 32_000)
            let giveUp = monotonicNanoseconds() + Int64(10e9 * sanitizerScale)
            // Send without reading until the server stops reading us (its queue of echoes is full).
            while server.progress.engine.backpressurePauses < 1 && monotonicNanoseconds() < giveUp {
                let n = chunk.withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if n <= 0 { usleep(5_000) }
            }
            while server.progress.report.drainTimeouts < 1 && monotonicNanoseconds() < giveUp { usleep(20_000) }
            // Read what the server had queued, up to the reset.
            client.receiveTimeout(seconds: 3)
            while true {
                switch client.receive() {
                case .data: continue
                case let other: return other
                }
            }
        }
        #expect(end == .failed(.connectionReset), "\(end)")
        server.stop()
        let report = server.wait()
        #expect(report.idleClosed == 1)
        #expect(report.drainTimeouts == 1, "\(report.text)")
        #expect(server.progress.engine.notes.allSatisfy { !$0.contains("SO_LINGER") })
    }
}

/// The table-full case through the command line, as `ServerDescriptorExhaustionTests` does for EMFILE:
/// `--max-fds 16` sizes the table (and the slots) at 16, in a child process so that the limit is its own.
@Suite(.serialized, .enabled(if: ringstormBinary != nil, "the ringstorm executable is not built next to the tests"))
struct DirectTableFullServerTests {
    /// Past a full table a client is dropped by the kernel (FIN if it sent nothing, RST if its
    /// REGISTER had arrived), each counted `direct_table_full` and as an ENFILE accept error; meanwhile
    /// the paused listener leaves later clients queued rather than dropping them too, and a close lets
    /// the queued one in.
    @Test func aFullTableDropsTheClientAndTheServerCountsIt() async throws {
        try await onThread {
            let child = try ServerChild(["--backend", "uring", "--uring-features", "direct-descriptors", "--max-fds", "16",
                                         "--on-emfile", "pause"])
            defer { child.terminate() }
            var held: [ServerTestClient] = []
            for id in UInt64(1)...16 {
                let client = try ServerTestClient(port: child.port)
                client.send(frame: .register(clientID: id))
                #expect(try client.receiveFrame() == .registered(clientID: id))
                held.append(client)
            }
            // The table is full: a client that sends nothing is taken off the queue and closed, FIN.
            let silent = try ServerTestClient(port: child.port)
            #expect(silent.receive() == .endOfStream)

            // The listener waits for room: the next client is queued, unanswered, not dropped.
            let queued = try ServerTestClient(port: child.port)
            queued.send(frame: .register(clientID: 100))
            queued.receiveTimeout(seconds: 0.7)
            #expect(queued.receive() == .wouldBlock)
            held.removeFirst().close()
            queued.receiveTimeout(seconds: 3)
            #expect(try queued.receiveFrame() == .registered(clientID: 100))

            // Full again; a client whose REGISTER arrived before the server looked (stopped meanwhile)
            // is closed with it unread: RST.
            kill(child.process.processIdentifier, SIGSTOP)
            // `kill` returns before the threads stop: one still running could accept between the
            // talker's connect and its REGISTER (measured: 1 run in 6 saw FIN).
            #expect(waitUntilStopped(child.process.processIdentifier))
            let talker = try ServerTestClient(port: child.port)
            talker.send(frame: .register(clientID: 200))
            #expect(talker.waitUntilAcknowledged())
            kill(child.process.processIdentifier, SIGCONT)
            #expect(talker.receive() == .failed(.connectionReset))

            let report = try child.stop()
            #expect(report.directTableFull == 2, "\(report.text)")
            #expect(report.acceptErrors["ENFILE"] == 2)
            #expect(report.registered == 17)
            #expect(report.text.contains("direct table full 2"))
            withExtendedLifetime(held) {}
        }
    }
}

/// Waits (up to 3 s) until every thread of `pid` is stopped (`T` in `/proc/PID/task/TID/stat`).
private func waitUntilStopped(_ pid: Int32) -> Bool {
    let deadline = monotonicNanoseconds() + 3_000_000_000
    while monotonicNanoseconds() < deadline {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        let states = tasks.compactMap { tid -> Character? in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(close, offsetBy: 2)...].first
        }
        if !states.isEmpty && states.allSatisfy({ $0 == "T" }) { return true }
        usleep(1_000)
    }
    return false
}
