import RingStorm
import RingStormEngine
import Testing

/// Several threads share one port through SO_REUSEPORT, and only with each other: a second server
/// asking for the same port is refused with EADDRINUSE instead of silently joining the first one's
/// group and splitting its traffic.
@Suite struct SharedPortTests {
    @Test(arguments: Backend.allCases)
    func threadsShareOnePortAndRefuseStrangers(_ backend: Backend) throws {
        var first = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
        first.backend = backend
        first.threads = 3
        let server = try RingStormServer(configuration: first)
        defer { server.stop(); _ = server.wait() }
        #expect(server.address.port != 0)

        var second = first
        second.listen = server.address
        second.threads = 2
        #expect {
            _ = try RingStormServer(configuration: second)
        } throws: { error in
            "\(error)".contains("EADDRINUSE")
        }
    }
}
