import Foundation
import Testing
import RingStorm
import RingStormEngine
@testable import ringstorm

/// End to end on loopback: the load generator against in-test peers that end connections in each of
/// the ways the kernel knows (`../shared/kernel-facts.md`), on both backends. Each run is one echo
/// client sending one 16-byte request, so the phase is exactly `request` (or `connect`).
@Suite struct LoadGeneratorTests {
    func configuration(_ backend: Backend, port: UInt16, seconds: Double = 1.5) -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: port))
        c.backend = backend
        c.connections = 1
        c.wireProtocol = .echo
        c.messageSize = 16
        c.pacing = .closedLoop(pipeline: 1)
        c.durationNanoseconds = Int64(seconds * 1e9)
        c.requestTimeoutNanoseconds = 400_000_000
        c.connectTimeoutNanoseconds = 1_000_000_000
        c.drainNanoseconds = 200_000_000
        c.engine.receiveBufferCount = 64
        return c
    }

    /// The only failure in the report, as (phase, name).
    func onlyFailure(_ report: LoadReport) -> [String] {
        var found: [String] = []
        for phase in Phase.allCases {
            for item in report.outcomes[phase].nonZero {
                found.append("\(phase)/\(item.outcome.name)=\(item.count)")
            }
        }
        return found
    }

    func run(_ backend: Backend, _ behaviour: PeerBehaviour) throws -> LoadReport {
        let peer = LoadTestPeer()
        peer.serveOne(behaviour)
        defer { peer.finish() }
        return try LoadGenerator(configuration: configuration(backend, port: peer.port)).runBlocking()
    }

    @Test(arguments: Backend.allCases)
    func peerClosingWithUnreadDataIsReset(_ backend: Backend) throws {
        let report = try run(backend, .closeWithUnreadData)
        #expect(onlyFailure(report) == ["request/reset=1"])
        #expect(report.connections.established == 1)
    }

    @Test(arguments: Backend.allCases)
    func peerReadingAllThenClosingIsClosed(_ backend: Backend) throws {
        let report = try run(backend, .readAllThenClose)
        #expect(onlyFailure(report) == ["request/closed=1"])
    }

    @Test(arguments: Backend.allCases)
    func peerWithLingerZeroIsReset(_ backend: Backend) throws {
        let report = try run(backend, .lingerZeroClose)
        #expect(onlyFailure(report) == ["request/reset=1"])
    }

    @Test(arguments: Backend.allCases)
    func peerNeverAnsweringIsResponseTimeout(_ backend: Backend) throws {
        let report = try run(backend, .neverAnswer)
        #expect(onlyFailure(report) == ["request/response_timeout=1"])
        #expect(report.requests.sent == 1 && report.requests.answered == 0)
        // Its one connection was open: the steady window ran from then, with nothing answered in it.
        let steady = try #require(report.steady)
        #expect(steady.answered == 0 && steady.seconds > 0 && steady.seconds <= report.durationSeconds)
    }

    @Test(arguments: Backend.allCases)
    func listenerNeverAcceptingIsConnectedThenResponseTimeout(_ backend: Backend) throws {
        let peer = LoadTestPeer(backlog: 1)  // never accepts
        defer { peer.finish() }
        let report = try LoadGenerator(configuration: configuration(backend, port: peer.port)).runBlocking()
        #expect(report.connections.established == 1)
        #expect(onlyFailure(report) == ["request/response_timeout=1"])
    }

    @Test(arguments: Backend.allCases)
    func noListenerIsRefused(_ backend: Backend) throws {
        let report = try LoadGenerator(configuration: configuration(backend, port: LoadTestPeer.closedPort(), seconds: 0.5)).runBlocking()
        #expect(onlyFailure(report) == ["connect/refused=1"])
        #expect(report.connections.attempted == 1 && report.connections.established == 0)
        #expect(report.steady == nil)  // never all open: no steady window
    }

    @Test(arguments: Backend.allCases)
    func reconnectsAfterRefusalWithBackoff(_ backend: Backend) throws {
        var c = configuration(backend, port: LoadTestPeer.closedPort(), seconds: 1)
        c.reconnect = true
        c.reconnectMinimumNanoseconds = 100_000_000
        c.reconnectMaximumNanoseconds = 400_000_000
        let report = try LoadGenerator(configuration: c).runBlocking()
        // Attempts at about 0, 0.1, 0.3, 0.7 s (backoff 100, 200, 400 ms).
        #expect((3...5).contains(report.connections.attempted))
        #expect(report.outcomes.connect.refused == report.connections.attempted)
    }

    @Test(arguments: Backend.allCases)
    func echoRunAgainstEchoServer(_ backend: Backend) async throws {
        var serverConfiguration = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
        serverConfiguration.protocol = .echo
        serverConfiguration.backend = backend
        serverConfiguration.engine.maxConnections = 256
        serverConfiguration.engine.receiveBufferCount = 256
        let server = try RingStormServer(configuration: serverConfiguration)
        defer { server.stop(); _ = server.wait() }
        var c = configuration(backend, port: server.address.port, seconds: 1.5)
        c.connections = 20
        c.threads = 2
        c.firstMessageSize = 75
        c.pacing = .closedLoop(pipeline: 2)
        // How long to wait for answers that come: under the thread sanitizer (10x slower) the 200-ms drain
        // ended all 20 connections with requests still in flight.
        c.requestTimeoutNanoseconds = Int64(400e6 * sanitizerScale)
        c.drainNanoseconds = Int64(200e6 * sanitizerScale)
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-load-\(backend)-\(getpid()).log").path
        c.connectionsLogPath = log
        defer { unlink(log) }
        let report = try await LoadGenerator(configuration: c).run()
        #expect(report.requests.answered > 0)
        #expect(report.latency.request.count == report.requests.answered)
        #expect(report.latency.register.count == 20)
        #expect(report.connections.established == 20 && report.connections.peakOpen == 20)
        #expect(report.outcomes.total == 0, "\(report.outcomes)")
        #expect(report.syscalls.total > 0)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 20)
        #expect(lines.allSatisfy { $0.contains("\"outcome\":\"end_of_run\"") }, "\(lines.first ?? "")")
    }

    @Test(arguments: Backend.allCases)
    func ringstormRunAgainstRingStormServer(_ backend: Backend) throws {
        var serverConfiguration = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
        serverConfiguration.backend = backend
        let server = try RingStormServer(configuration: serverConfiguration)
        defer { server.stop(); _ = server.wait() }
        var c = configuration(backend, port: server.address.port, seconds: 1.5)
        c.wireProtocol = .ringstorm
        c.connections = 20
        c.messageSize = 100
        c.pacing = .closedLoop(pipeline: 2)
        let report = try LoadGenerator(configuration: c).runBlocking()
        #expect(report.outcomes.total == 0)
        #expect(report.latency.register.count == 20)
        #expect(report.requests.answered > 0)
        #expect(report.latency.request.count == report.requests.answered)
    }

    @Test func openLoopMeasuresFromIntendedSendTime() async throws {
        var serverConfiguration = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
        serverConfiguration.protocol = .echo
        serverConfiguration.engine.maxConnections = 64
        serverConfiguration.engine.receiveBufferCount = 64
        let server = try RingStormServer(configuration: serverConfiguration)
        defer { server.stop(); _ = server.wait() }
        var c = configuration(.uring, port: server.address.port, seconds: 1)
        c.connections = 5
        c.pacing = .openLoop(intervalNanoseconds: 50_000_000)
        let report = try await LoadGenerator(configuration: c).run()
        // About 20 requests per connection in 1 s at 50 ms.
        #expect((80...110).contains(report.requests.sent))
        #expect(report.requests.answered >= report.requests.sent - 5)
        #expect(report.outcomes.total == 0)
    }

    @Test func budgetRefusesMoreConnectionsThanDescriptors() {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        c.connections = 50_000
        let budget = LoadBudget(descriptorLimit: 20_000, portsPerSource: 28_232)
        #expect(throws: LoadError.self) { try budget.check(c) }
        do { try budget.check(c) } catch {
            #expect(error.commandLineText.contains("needs 50,000 descriptors but one process may open 19,990"))
            #expect(error.commandLineText.contains("--processes 3"))
        }
    }

    @Test func budgetRefusesMoreConnectionsThanPortsPerSource() throws {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        c.connections = 50_000
        let budget = LoadBudget(descriptorLimit: 100_000, portsPerSource: 28_232)
        do { try budget.check(c) } catch {
            #expect(error.commandLineText.contains("--source 127.0.0.2-127.0.0.3"))
        }
        c.sources = try SourceAddresses.parse("127.0.0.2-127.0.0.3")
        try budget.check(c)
    }

    @Test func sourceAddressesParseListsAndRanges() throws {
        let list = try SourceAddresses.parse("127.0.0.2-127.0.0.4,127.0.0.9")
        #expect(list.map(\.host) == ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"])
        #expect(throws: LoadError.self) { try SourceAddresses.parse("127.0.0.5-127.0.0.2") }
        #expect(throws: LoadError.self) { try SourceAddresses.parse("nonsense") }
    }
}
