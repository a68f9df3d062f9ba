import Foundation
import RingStorm
import RingStormEngine
import Testing

/// How a load run ends, and what it costs while little happens.
@Suite struct LoadEndingTests {
    /// At the deadline the generator stops sending, collects the answers still due and closes: every
    /// request sent is answered, and the server sees each connection end with FIN, never RST (a close
    /// with answers unread would reset). Pipelined requests make sure answers are in flight at the end.
    @Test(arguments: Backend.allCases)
    func theEndIsAnOrderlyCloseWithNothingUnanswered(_ backend: Backend) throws {
        var serverConfiguration = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
        serverConfiguration.backend = backend
        let server = try RingStormServer(configuration: serverConfiguration)
        var c = LoadGenerator.Configuration(target: server.address)
        c.backend = backend
        c.connections = 200
        c.pacing = .closedLoop(pipeline: 4)
        c.durationNanoseconds = 1_000_000_000
        let report = try LoadGenerator(configuration: c).runBlocking()
        // The server counts a peer's FIN when its read ends: give the last closes a moment.
        let deadline = monotonicNanoseconds() + 2_000_000_000
        while server.progress.report.closedByPeer + server.progress.report.resetByPeer < 200 && monotonicNanoseconds() < deadline {
            usleep(20_000)
        }
        server.stop()
        let served = server.wait()
        #expect(report.outcomes.total == 0)
        #expect(report.requests.sent > 200)
        #expect(report.requests.answered == report.requests.sent)
        #expect(served.closedByPeer == 200)
        #expect(served.resetByPeer == 0)
    }

    /// The generator ticks when something is due, not every millisecond: a second in which nothing can
    /// happen (three connects refused at once, no reconnect) costs a few dozen syscalls, not a thousand.
    @Test(arguments: Backend.allCases)
    func anIdleSecondCostsFewSyscalls(_ backend: Backend) throws {
        let closed = LoadTestPeer.closedPort()
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: closed))
        c.backend = backend
        c.connections = 3
        c.durationNanoseconds = 1_000_000_000
        let report = try LoadGenerator(configuration: c).runBlocking()
        #expect(report.outcomes.connect.refused == 3)
        #expect(report.syscalls.total < 200, "an idle second cost \(report.syscalls.total) syscalls")
    }
}
