import Foundation
import Glibc
import RingStorm
import RingStormEngine
import Testing

/// `RingStormServer` end to end on loopback, on both backends, with blocking client sockets on helper
/// threads (never on the test's own executor).
@Suite struct ServerTests {
    @Test(arguments: Backend.allCases)
    func registerAndRequestRoundTrip(backend: Backend) async throws {
        let server = try RingStormServer(configuration: .testing(backend))
        let port = server.address.port
        try await onThread {
            let client = try ServerTestClient(port: port)
            client.send(frame: .register(clientID: 42))
            #expect(try client.receiveFrame() == .registered(clientID: 42))
            for sequence in UInt64(1)...100 {
                let payload = (0..<Int(sequence % 40)).map { UInt8(truncatingIfNeeded: $0) }
                client.send(frame: .request(sequence: sequence, timestamp: sequence &* 1000, payload: payload))
                #expect(try client.receiveFrame() == .response(sequence: sequence, timestamp: sequence &* 1000, payload: payload))
            }
            // Two requests in one segment, answered in order.
            client.send(bytes: ServerTestFrame.request(sequence: 7, timestamp: 1, payload: [1]).bytes
                        + ServerTestFrame.request(sequence: 8, timestamp: 2, payload: []).bytes)
            #expect(try client.receiveFrame() == .response(sequence: 7, timestamp: 1, payload: [1]))
            #expect(try client.receiveFrame() == .response(sequence: 8, timestamp: 2, payload: []))
        }
        try await waitUntil { server.progress.report.closedByPeer == 1 }
        server.stop()
        let report = server.wait()
        #expect(report.accepted == 1)
        #expect(report.registered == 1)
        #expect(report.requests == 102)
        #expect(report.closedByPeer == 1)
        #expect(report.protocolErrors == 0)
        #expect(report.syscalls > 0)
        #expect(report.backend == backend.rawValue)
    }

    @Test(arguments: Backend.allCases)
    func registerTimeoutSendsErrorAndCloses(backend: Backend) async throws {
        var configuration = RingStormServer.Configuration.testing(backend)
        configuration.registerTimeout = .milliseconds(300)
        let server = try RingStormServer(configuration: configuration)
        let port = server.address.port
        try await onThread {
            let client = try ServerTestClient(port: port)
            let start = monotonicNanoseconds()
            #expect(try client.receiveFrame() == .error(code: ErrorCode.registerTimeout.rawValue))
            #expect(client.receive() == .endOfStream)
            let waited = Double(monotonicNanoseconds() - start) / 1e9
            #expect(waited >= 0.2 && waited < 2, "closed after \(waited) s")
        }
        try await waitUntil { server.progress.report.registerTimeouts == 1 }
        server.stop()
        let report = server.wait()
        #expect(report.registerTimeouts == 1)
        #expect(report.registered == 0)
    }

    @Test(arguments: Backend.allCases)
    func idleTimeoutClosesWithFIN(backend: Backend) async throws {
        var configuration = RingStormServer.Configuration.testing(backend)
        configuration.idleTimeout = .milliseconds(400)
        let server = try RingStormServer(configuration: configuration)
        let port = server.address.port
        try await onThread {
            let client = try ServerTestClient(port: port)
            client.send(frame: .register(clientID: 1))
            #expect(try client.receiveFrame() == .registered(clientID: 1))
            // Activity pushes the deadline back: 3 requests 200 ms apart keep it open past 400 ms.
            for sequence in UInt64(1)...3 {
                usleep(200_000)
                client.send(frame: .request(sequence: sequence, timestamp: 0, payload: []))
                #expect(try client.receiveFrame() == .response(sequence: sequence, timestamp: 0, payload: []))
            }
            let start = monotonicNanoseconds()
            #expect(client.receive() == .endOfStream)  // FIN, not RST
            let waited = Double(monotonicNanoseconds() - start) / 1e9
            // Not early, and on time: within 2 s, the timer's lateness scaled under a sanitizer (TSan
            // took over 2 s while fuzzers shared the 2 cores).
            #expect(waited >= 0.25 && waited < 2 * sanitizerScale, "closed after \(waited) s")
        }
        try await waitUntil { server.progress.report.idleClosed == 1 }
        server.stop()
        let report = server.wait()
        #expect(report.idleClosed == 1)
        #expect(report.requests == 3)
        #expect(report.resetByPeer == 0)
    }

    @Test(arguments: Backend.allCases)
    func protocolViolationsGetErrorFrames(backend: Backend) async throws {
        var configuration = RingStormServer.Configuration.testing(backend)
        configuration.maxFrameSize = 1024
        let server = try RingStormServer(configuration: configuration)
        let port = server.address.port
        try await onThread {
            // Malformed: length 0.
            let malformed = try ServerTestClient(port: port)
            malformed.send(frame: .register(clientID: 1))
            #expect(try malformed.receiveFrame() == .registered(clientID: 1))
            malformed.send(bytes: [0, 0, 0, 0])
            #expect(try malformed.receiveFrame() == .error(code: ErrorCode.malformedFrame.rawValue))
            #expect(malformed.receive() == .endOfStream)

            // Oversized: announces 1 MiB with a 1 KiB limit; only the header is sent.
            let oversized = try ServerTestClient(port: port)
            oversized.send(frame: .register(clientID: 2))
            #expect(try oversized.receiveFrame() == .registered(clientID: 2))
            oversized.send(bytes: [0, 0x10, 0, 0, FrameType.request.rawValue])
            #expect(try oversized.receiveFrame() == .error(code: ErrorCode.frameTooLarge.rawValue))
            #expect(oversized.receive() == .endOfStream)

            // A REQUEST before REGISTER.
            let early = try ServerTestClient(port: port)
            early.send(frame: .request(sequence: 1, timestamp: 0, payload: []))
            #expect(try early.receiveFrame() == .error(code: ErrorCode.notRegistered.rawValue))
            #expect(early.receive() == .endOfStream)

            // An unknown type byte.
            let unknown = try ServerTestClient(port: port)
            unknown.send(bytes: [0, 0, 0, 1, 99])
            #expect(try unknown.receiveFrame() == .error(code: ErrorCode.unknownType.rawValue))
        }
        try await waitUntil { server.progress.report.protocolErrors == 4 }
        server.stop()
        let report = server.wait()
        #expect(report.protocolErrors == 4)
        #expect(report.registered == 2)
    }

    @Test(arguments: Backend.allCases)
    func echoIdleTimeoutClosesWithFINAndIsCounted(backend: Backend) async throws {
        var configuration = RingStormServer.Configuration.testing(backend)
        configuration.protocol = .echo
        configuration.idleTimeout = .milliseconds(400)
        let server = try RingStormServer(configuration: configuration)
        let port = server.address.port
        try await onThread {
            let client = try ServerTestClient(port: port)
            // Activity pushes the deadline back: 3 messages 200 ms apart keep it open past 400 ms.
            for round in 1...3 {
                usleep(200_000)
                let message = [UInt8](repeating: UInt8(round), count: 64)
                client.send(bytes: message)
                var echoed: [UInt8] = []
                while echoed.count < message.count {
                    guard case .data(let bytes) = client.receive() else { throw ServerTestError("no echo") }
                    echoed += bytes
                }
                #expect(echoed == message)
            }
            let start = monotonicNanoseconds()
            #expect(client.receive() == .endOfStream)  // FIN, not RST
            let waited = Double(monotonicNanoseconds() - start) / 1e9
            // Not early, and on time: within 2 s, the timer's lateness scaled under a sanitizer (TSan
            // took over 2 s while fuzzers shared the 2 cores).
            #expect(waited >= 0.25 && waited < 2 * sanitizerScale, "closed after \(waited) s")
            // A connection that never sends is closed too: the idle deadline runs from accept.
            let silent = try ServerTestClient(port: port)
            #expect(silent.receive() == .endOfStream)
        }
        try await waitUntil { server.progress.report.idleClosed == 2 }
        server.stop()
        let report = server.wait()
        #expect(report.idleClosed == 2)
        #expect(report.accepted == 2)
        #expect(report.requests >= 3)
        #expect(report.bytesEchoed == 192)
        #expect(report.registered == 0 && report.registerTimeouts == 0 && report.protocolErrors == 0)
        #expect(report.resetByPeer == 0)
        #expect(report.text.contains("idle 2"))
        #expect(report.text.contains("bytes echoed 192"))
    }

    @Test func configurationIsValidated() {
        var configuration = RingStormServer.Configuration.testing(.epoll)
        configuration.maxFrameSize = 4
        #expect(throws: ServerError.self) { try RingStormServer(configuration: configuration) }
        configuration = .testing(.epoll)
        configuration.maxFDs = DescriptorLimit.current.hard + 1
        do {
            _ = try RingStormServer(configuration: configuration)
            Issue.record("a limit above the hard limit was accepted")
        } catch {
            #expect(error.description.contains("hard descriptor limit"))
        }
    }

    @Test func errorsCarryTheNumbersAndNoFlagNames() {
        var configuration = RingStormServer.Configuration.testing(.epoll)
        configuration.threads = 65
        do {
            try configuration.validate()
            Issue.record("65 threads were accepted")
        } catch {
            guard case .threadsOutOfRange(65) = error else { Issue.record("\(error)"); return }
            #expect(error.description == "threads must be between 1 and 64, not 65")
        }
        let errors: [ServerError] = [.maxFrameSizeOutOfRange(4), .negativeTimeout(.idle), .tickNotPositive, .maxFDsTooLow(4),
                                     .maxFDsAboveHardLimit(30_000, hard: 20_000)]
        for error in errors { #expect(!error.description.contains("--"), "\(error.description)") }
        #expect(ServerError.negativeTimeout(.idle).description == "idle timeout cannot be negative")
        for error: ReproError in [.maxFDs(4, minimum: 16), .silentDelay(5_000_000_000, duration: 1_000_000_000), .intervalNotPositive(0)] {
            #expect(!error.description.contains("--"), "\(error.description)")
        }
    }

    @Test func snapshotsCrossAProcessBoundaryAsJSON() throws {
        var snapshot = ServerSnapshot(backend: .epoll)
        snapshot.report.accepted = 3
        snapshot.report.requests = 40
        snapshot.report.bytesEchoed = 2560
        snapshot.report.recordAcceptError(.tooManyOpenFiles)
        snapshot.openConnections = 2
        snapshot.pausedListeners = 1
        snapshot.engine.notes = ["a note"]
        snapshot.engine.features = ["epoll_pwait2"]
        let data = try JSONEncoder().encode(snapshot)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["report", "open", "paused_listeners", "notes", "features"])
        let decoded = try JSONDecoder().decode(ServerSnapshot.self, from: data)
        #expect(decoded.report == snapshot.report)
        #expect(decoded.openConnections == 2 && decoded.pausedListeners == 1 && decoded.engine.notes == ["a note"])
        #expect(decoded.engine.features == ["epoll_pwait2"])
        // Echo's counter merges like the others; a ringstorm report has none.
        #expect((decoded + decoded).report.bytesEchoed == 5120)
        #expect((decoded.report + ServerReport(backend: .epoll)).bytesEchoed == 2560)
        #expect(ServerReport(backend: .epoll).bytesEchoed == nil)
    }

    @Test func embeddingRunsForADuration() async throws {
        var configuration = RingStormServer.Configuration.testing(.uring)
        configuration.threads = 2
        let server = try RingStormServer(configuration: configuration)
        let port = server.address.port
        async let report = server.run(for: .milliseconds(800))
        try await onThread {
            for id in UInt64(1)...4 {
                let client = try ServerTestClient(port: port)
                client.send(frame: .register(clientID: id))
                #expect(try client.receiveFrame() == .registered(clientID: id))
            }
        }
        let final = try await report
        #expect(final.accepted == 4)
        #expect(final.registered == 4)
        #expect(final.durationSeconds >= 0.7)
        let decoded = try ServerReport(json: final.json())
        #expect(decoded == final)
    }
}

/// Descriptor exhaustion needs a low RLIMIT_NOFILE, which is per process: lowering it here would make
/// every test running in parallel fail with EMFILE. So these run the built `ringstorm` binary (next to
/// the test bundle) as a child with `--max-fds`, one at a time.
@Suite(.serialized, .enabled(if: ringstormBinary != nil, "the ringstorm executable is not built next to the tests"))
struct ServerDescriptorExhaustionTests {
    /// Both protocols: the policy is the server's, the first bytes (a REGISTER, or a message to echo)
    /// are what makes a shed connection's close an RST.
    @Test(arguments: Backend.allCases, ServerProtocolKind.allCases)
    func shedResetsClientsWithDataAndFINsSilentOnes(backend: Backend, protocol kind: ServerProtocolKind) async throws {
        try await onThread {
            let child = try ServerChild(["--backend", backend.rawValue, "--max-fds", "16", "--on-emfile", "shed"],
                                        protocol: kind)
            defer { child.terminate() }
            let held = try fill(port: child.port, kind)
            #expect(held.connections.count >= 1)
            // The first client past the limit is shed at once: FIN or RST depending on whether its
            // registration had arrived when the server accepted it (on loopback the server often wins).
            #expect(held.overflow == .endOfStream || held.overflow == .failed(.connectionReset))

            // Make the order certain, as on a busy server: stop the server, let a registering client's
            // data and a silent client's handshake arrive, then let it run.
            kill(child.process.processIdentifier, SIGSTOP)
            let registering = try ServerTestClient(port: child.port)
            registering.send(bytes: firstBytes(kind, id: 999))
            #expect(registering.waitUntilAcknowledged())
            let silent = try ServerTestClient(port: child.port)
            usleep(100_000)
            kill(child.process.processIdentifier, SIGCONT)
            // Closed with the registration unread: RST. Closed with nothing unread: FIN.
            #expect(registering.receive() == .failed(.connectionReset))
            #expect(silent.receive() == .endOfStream)

            let report = try child.stop()
            #expect(report.shed >= 3)
            #expect((report.acceptErrors["EMFILE"] ?? 0) >= 1)
            switch kind {
            case .ringstorm:
                #expect(report.registered == held.connections.count)
            case .echo, .http:
                #expect(report.accepted == held.connections.count)
                #expect(report.requests >= held.connections.count)
                #expect(report.registered == 0)
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func pauseKeepsClientsQueuedWithoutBurningCPU(backend: Backend) async throws {
        try await onThread {
            let child = try ServerChild(["--backend", backend.rawValue, "--max-fds", "16", "--on-emfile", "pause"])
            defer { child.terminate() }
            var held = try fill(port: child.port)
            #expect(held.connections.count >= 1)
            // Past the limit: connected, registration acknowledged by the kernel, no answer, no FIN/RST.
            #expect(held.overflow == .wouldBlock)
            let (queued, queuedID) = try #require(held.waiting)

            let cpu = child.cpuSeconds(over: 1.0)
            #expect(cpu < 0.2, "the paused server used \(cpu) s of CPU in 1 s")

            // A descriptor frees: the queued client is accepted and answered.
            held.connections.removeFirst().close()
            queued.receiveTimeout(seconds: 3)
            #expect(try queued.receiveFrame() == .registered(clientID: queuedID))

            let report = try child.stop()
            #expect((report.acceptErrors["EMFILE"] ?? 0) >= 1)
            #expect(report.shed == 0)
            #expect(report.registered == held.connections.count + 2)
        }
    }

    @Test func theCommandWordsServerErrorsWithItsFlags() throws {
        let low = try runRingstorm(["serve", "--max-fds", "4", "--listen", "127.0.0.1:0"])
        #expect(low.status == 2)
        #expect(low.errors == "ringstorm: --max-fds must be at least 8 (stdin/out/err, the engine and the listener need some), not 4\n")
        let hard = DescriptorLimit.current.hard
        let high = try runRingstorm(["serve", "--max-fds", String(hard + 1), "--listen", "127.0.0.1:0"])
        #expect(high.status == 2)
        #expect(high.errors == "ringstorm: --max-fds \(hard + 1) is above the hard descriptor limit of \(hard) (ulimit -Hn); use at most \(hard)\n")
    }

    /// What a client of `kind` sends first: REGISTER, or a message to echo.
    private func firstBytes(_ kind: ServerProtocolKind, id: UInt64) -> [UInt8] {
        switch kind {
        case .ringstorm: ServerTestFrame.register(clientID: id).bytes
        case .echo: Array("ping \(id)".utf8)
        case .http: Array("GET /\(id) HTTP/1.1\r\n\r\n".utf8)
        }
    }

    /// Opens clients that send their first bytes (a REGISTER by default) until one gets no answer:
    /// returns those answered, what the first unanswered one saw, and that client (kept open) when it
    /// saw nothing.
    private func fill(port: UInt16, _ kind: ServerProtocolKind = .ringstorm) throws
        -> (connections: [ServerTestClient], overflow: ServerTestReceived, waiting: (ServerTestClient, UInt64)?)
    {
        var connections: [ServerTestClient] = []
        for id in UInt64(1)...64 {
            let client = try ServerTestClient(port: port)
            let message = firstBytes(kind, id: id)
            client.send(bytes: message)
            client.receiveTimeout(seconds: 0.7)
            // REGISTERED, or the echo.
            let answerSize = switch kind {
            case .ringstorm: WireFormat.registerFrameSize
            case .echo: message.count
            case .http: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8.count
            }
            let first = client.receive(count: answerSize)
            if case .data(let bytes) = first, bytes.count == answerSize {
                connections.append(client)
                continue
            }
            if first == .wouldBlock { return (connections, first, (client, id)) }
            return (connections, first, nil)
        }
        throw ServerTestError("64 clients were all accepted: --max-fds had no effect")
    }
}
