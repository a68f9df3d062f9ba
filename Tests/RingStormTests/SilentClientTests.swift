import Foundation
import Testing
import RingStorm
import RingStormEngine

/// Silent clients (`--silent`, `Pacing.silent`): connect, send nothing, and record what the server does,
/// like a telnet that says nothing. And the padded REGISTER (`--registration-size`) the repro sends.
@Suite struct SilentClientTests {
    func configuration(_ backend: Backend, port: UInt16, seconds: Double = 1) -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: port))
        c.backend = backend
        c.connections = 1
        c.pacing = .silent
        c.durationNanoseconds = Int64(seconds * 1e9)
        c.requestTimeoutNanoseconds = 300_000_000  // no effect on a silent client: it waits for nothing
        c.drainNanoseconds = 200_000_000
        c.engine.receiveBufferCount = 64
        return c
    }

    func failures(_ report: LoadReport) -> [String] {
        Phase.allCases.flatMap { phase in report.outcomes[phase].nonZero.map { "\(phase)/\($0.outcome.name)=\($0.count)" } }
    }

    func run(_ backend: Backend, _ behaviour: PeerBehaviour, protocol wire: LoadGenerator.WireProtocol = .ringstorm) throws -> LoadReport {
        let peer = LoadTestPeer()
        peer.serveOne(behaviour)
        defer { peer.finish() }
        var c = configuration(backend, port: peer.port)
        c.wireProtocol = wire
        return try LoadGenerator(configuration: c).runBlocking()
    }

    @Test(arguments: Backend.allCases)
    func serverClosingASilentConnectionIsClosed(_ backend: Backend) throws {
        let report = try run(backend, .closeAtOnce)
        #expect(failures(report) == ["idle/closed=1"])
        #expect(report.connections.established == 1)
        #expect(report.requests.sent == 0 && report.latency.register.count == 0)
    }

    @Test(arguments: Backend.allCases)
    func serverResettingASilentConnectionIsReset(_ backend: Backend) throws {
        let report = try run(backend, .lingerZeroAtOnce)
        #expect(failures(report) == ["idle/reset=1"])
    }

    @Test(arguments: Backend.allCases)
    func bytesFromTheServerAreIgnoredThenFINIsClosed(_ backend: Backend) throws {
        // Not ringstorm frames: a silent client does not decode, it only watches how the connection ends.
        let report = try run(backend, .sendThenClose)
        #expect(failures(report) == ["idle/closed=1"])
        #expect(try run(backend, .sendThenClose, protocol: .echo).outcomes.idle.closed == 1)
    }

    @Test(arguments: Backend.allCases)
    func aServerThatNeverAcceptsLeavesSilentClientsConnectedWithNothing(_ backend: Backend) throws {
        let peer = LoadTestPeer(backlog: 4)  // never accepts
        defer { peer.finish() }
        var c = configuration(backend, port: peer.port)
        c.connections = 3
        let report = try LoadGenerator(configuration: c).runBlocking()
        #expect(report.connections.established == 3)
        #expect(report.outcomes.total == 0, "no timeout: a silent client waits for nothing")
    }

    @Test func paddedRegisterIsOneFrameTheServerAccepts() async throws {
        var bytes = [UInt8](repeating: 0, count: 75)
        let n = bytes.withUnsafeMutableBytes { FrameEncoder.encodeRegister(clientID: 42, frameSize: 75, into: $0) }
        #expect(n == 75)
        #expect(Array(bytes[0..<13]) == [0, 0, 0, 71, 1, 0, 0, 0, 0, 0, 0, 0, 42])
        #expect(Array(bytes[13..<17]) == Array("abcd".utf8))
        var decoder = FrameDecoder()
        var frames: [UInt64] = []
        try bytes.withUnsafeBytes { raw throws(ProtocolError) in
            try decoder.feed(raw) { frame in if case .register(let id) = frame { frames.append(id) } }
        }
        #expect(frames == [42])

        // End to end: 75-byte registrations against the server, answered like bare ones.
        let server = try RingStormServer(configuration: .testing(.epoll))
        defer { server.stop(); _ = server.wait() }
        var c = configuration(.epoll, port: server.address.port)
        c.pacing = .openLoop(intervalNanoseconds: 100_000_000)
        c.connections = 5
        c.registrationSize = 75
        let report = try await LoadGenerator(configuration: c).run()
        #expect(report.latency.register.count == 5)
        #expect(report.outcomes.total == 0)
        #expect(server.progress.report.protocolErrors == 0)
    }

    @Test func registrationSizeIsValidated() {
        var c = configuration(.epoll, port: 7200)
        c.pacing = .closedLoop(pipeline: 1)
        c.registrationSize = 12
        #expect(throws: LoadError.self) { try LoadGenerator(configuration: c).validate() }
        c.registrationSize = 75
        c.wireProtocol = .echo
        #expect(throws: LoadError.self) { try LoadGenerator(configuration: c).validate() }
    }
}
