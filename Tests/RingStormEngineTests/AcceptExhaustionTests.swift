import Glibc
import RingStormEngine
import Testing

/// What the EMFILE scenario saw, gathered on its own thread and asserted on the test's.
struct ExhaustionReport: Sendable {
    var setupFailure: String?
    var fillStoppedBy: Errno?
    var filled = 0
    var firstFailure: Outcome?
    var firstFailurePauses = false
    /// `.acceptFailed` events from the first one to the end of the paused window.
    var failuresWhilePaused = 0
    var pausedPolls = 0
    var pausedSyscalls = 0
    var pausedAcceptSyscalls = 0
    var shed = false
    var shedPeerSaw: Received?
    var acceptedWhilePaused = 0
    var acceptedAfterResume = 0
    var echoAfterResume = false
    var failuresAfterResume = 0
}

extension EngineTests {
    @Suite("Accept under descriptor exhaustion")
    struct AcceptExhaustion {
        /// The descriptor table is full when two clients connect and send: accept fails with EMFILE,
        /// reported once as `.acceptFailed(.tooManyOpenFiles)`, and the listener pauses: for half a
        /// second the loop neither spins on accept nor reports more failures. `shedOne` then sheds the
        /// first queued client (it sees RST: its bytes were unread), and once descriptors are free
        /// again `resumeAccepting` accepts the second, which still gets its echo.
        ///
        /// The table is filled on a dedicated thread with a private descriptor table (see
        /// `DescriptorTable`) instead of by lowering the process's RLIMIT_NOFILE, so nothing else in
        /// the test process can hit EMFILE.
        @Test(arguments: Backend.allCases)
        func emfilePausesAcceptingUntilResumed(_ backend: Backend) throws {
            let report = onDedicatedThread { Self.exhaustionScenario(backend) }
            try #require(report.setupFailure == nil, "\(report.setupFailure ?? "")")
            #expect(report.fillStoppedBy == .tooManyOpenFiles)
            #expect(report.firstFailure == .tooManyOpenFiles)
            #expect(report.firstFailurePauses)
            #expect(report.failuresWhilePaused == 1, "acceptFailed events while paused: \(report.failuresWhilePaused)")
            #expect(report.acceptedWhilePaused == 0)
            // Not spinning: about one syscall per poll (the wait itself), no accept retries.
            #expect(report.pausedPolls > 3)
            #expect(report.pausedSyscalls <= report.pausedPolls + 5,
                    "\(report.pausedSyscalls) syscalls over \(report.pausedPolls) polls while paused")
            #expect(report.pausedAcceptSyscalls == 0)
            #expect(report.shed)
            #expect(report.shedPeerSaw == .failed(.connectionReset))
            #expect(report.acceptedAfterResume == 1)
            #expect(report.echoAfterResume)
            #expect(report.failuresAfterResume == 0)
            print("[\(backend)] EMFILE: \(report.filled) descriptors filled; \(report.failuresWhilePaused) acceptFailed, \(report.pausedSyscalls) syscalls over \(report.pausedPolls) polls while paused")
        }

        /// Shedding without exhaustion: a queued client that sent nothing sees FIN; with nothing queued
        /// `shedOne` says so; the listener keeps accepting afterwards.
        @Test(arguments: Backend.allCases)
        func shedOneDropsAQueuedConnection(_ backend: Backend) throws {
            let (engine, listener, address) = try engineListening(backend)
            let server = EchoServer(engine)
            // Not polled yet: the connection waits in the accept queue.
            let shed = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(engine.shedOne(listener))
            #expect(shed.receive() == .endOfStream)
            #expect(!engine.shedOne(listener))
            let kept = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 2) { server.accepted.count == 1 })
            #expect(try server.roundTrip(kept, payload(20, seed: 33)))
            #expect(server.acceptFailures.isEmpty)
        }

        /// More clients than slots: the extra accepted sockets are closed at once (the client sees the
        /// stream end), counted as slot exhaustions; the connections that got a slot work, and a slot
        /// freed by a close is used again. A connect without a slot throws.
        @Test(arguments: Backend.allCases)
        func connectionsBeyondTheSlotsAreClosed(_ backend: Backend) throws {
            let (engine, _, address) = try engineListening(backend, configuration: testConfiguration(maxConnections: 4))
            let server = EchoServer(engine)
            var peers: [BlockingSocket] = []
            for _ in 0..<6 { peers.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
            #expect(try server.run(seconds: 2) { server.accepted.count == 4 && engine.statistics.slotExhaustions == 2 })
            #expect(engine.openConnections == 4)
            #expect(engine.statistics.slotExhaustions == 2)
            // Which two were refused a slot is up to the accept order; each peer either echoes or ends.
            var echoed = 0, ended = 0
            for (k, peer) in peers.enumerated() {
                let ping = payload(10, seed: UInt64(50 + k))
                try peer.sendAll(ping)
                var back: [UInt8] = []
                var end: Received?
                _ = try server.run(seconds: 2) {
                    loop: while true {
                        switch peer.receive(wait: false) {
                        case .data(let d): back += d
                        case .wouldBlock: break loop
                        case let other: end = other; break loop
                        }
                    }
                    return back.count >= ping.count || end != nil
                }
                if back == ping { echoed += 1 } else if end != nil { ended += 1 }
            }
            #expect(echoed == 4)
            #expect(ended == 2)
            // The engine has no slot for a connect of its own.
            #expect(throws: Errno.tooManyOpenFiles) { _ = try engine.connect(to: address, from: nil, timeoutNanoseconds: 0) }
            // A freed slot takes the next client.
            peers[0].close()
            peers[1].close()
            peers[2].close()
            #expect(try server.run(seconds: 2) { engine.openConnections <= 2 })
            let late = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 2) { server.accepted.count == 5 })
            #expect(try server.roundTrip(late, payload(10, seed: 60)))
        }

        static func exhaustionScenario(_ backend: Backend) -> ExhaustionReport {
            var report = ExhaustionReport()
            if let error = DescriptorTable.makePrivate() {
                report.setupFailure = "cannot give the thread a private descriptor table: \(error)"
                return report
            }
            do {
                let (engine, listener, address) = try engineListening(backend, configuration: testConfiguration(maxConnections: 64))
                let server = EchoServer(engine)
                // Arm the accept while descriptors are plentiful.
                _ = try pollFor(engine, seconds: 0.02, server.handle)
                // The clients' sockets exist before the table fills; they connect after.
                let shedPeer = try BlockingSocket(for: address, timeoutSeconds: 2)
                let keptPeer = try BlockingSocket(for: address, timeoutSeconds: 2)
                let message = payload(75, seed: 31)

                let (filler, stoppedBy) = DescriptorTable.fill()
                report.filled = filler.count
                report.fillStoppedBy = stoppedBy
                var released = false
                defer { if !released { DescriptorTable.release(filler) } }

                try shedPeer.connect(to: address)
                try shedPeer.sendAll(message)
                try keptPeer.connect(to: address)
                try keptPeer.sendAll(message)

                guard try server.run(seconds: 2, until: { !server.acceptFailures.isEmpty }) else {
                    report.setupFailure = "no acceptFailed with the descriptor table full (\(filler.count) filler, accepted \(server.accepted.count))"
                    return report
                }
                report.firstFailure = server.acceptFailures[0]
                report.firstFailurePauses = server.acceptFailures[0].pausesAccepting

                let before = engine.statistics.syscalls
                report.pausedPolls = try pollFor(engine, seconds: 0.5, pollNanoseconds: 50_000_000, server.handle)
                let after = engine.statistics.syscalls
                report.pausedSyscalls = after.total - before.total
                report.pausedAcceptSyscalls = after[.accept] - before[.accept]
                report.failuresWhilePaused = server.acceptFailures.count
                report.acceptedWhilePaused = server.accepted.count

                // Shed the first queued client with the reserve descriptor: it sees RST.
                report.shed = engine.shedOne(listener)
                report.shedPeerSaw = shedPeer.receive()

                DescriptorTable.release(filler)
                released = true
                engine.resumeAccepting(listener)
                var back: [UInt8] = []
                _ = try server.run(seconds: 2) {
                    while case .data(let d) = keptPeer.receive(wait: false) { back += d }
                    return back.count >= message.count
                }
                report.acceptedAfterResume = server.accepted.count
                report.echoAfterResume = back == message
                report.failuresAfterResume = server.acceptFailures.count - report.failuresWhilePaused
                keptPeer.close()
                _ = try server.run(seconds: 2) { engine.openConnections == 0 }
            } catch {
                report.setupFailure = "\(error)"
            }
            return report
        }
    }
}
