import Foundation
import RingStorm
import RingStormEngine
import Testing

/// An ERROR frame from the server ends the connection as `protocol_error`, and the report keeps the
/// server's own reason beside it, so "protocol error" never hides which side broke what.
@Suite struct LoadServerErrorTests {
    @Test(arguments: Backend.allCases)
    func theServersReasonIsKept(_ backend: Backend) throws {
        var serverConfiguration = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
        serverConfiguration.backend = backend
        serverConfiguration.maxFrameSize = 256
        let server = try RingStormServer(configuration: serverConfiguration)
        defer { server.stop(); _ = server.wait() }
        var c = LoadGenerator.Configuration(target: server.address)
        c.backend = backend
        c.connections = 5
        c.messageSize = 1000  // a REQUEST frame over the server's 256-byte maximum
        c.durationNanoseconds = 800_000_000
        let report = try LoadGenerator(configuration: c).runBlocking()
        #expect(report.outcomes.request.protocolError == 5)
        #expect(report.serverErrors == ["frame_too_large": 5])
        let json = try JSONSerialization.jsonObject(with: report.json()) as? [String: Any]
        #expect((json?["server_errors"] as? [String: Int]) == ["frame_too_large": 5])
        #expect(report.text.contains("the server's ERROR frames: frame_too_large 5"))
    }
}
