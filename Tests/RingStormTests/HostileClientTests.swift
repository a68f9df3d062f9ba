import Foundation
import Glibc
import RingStorm
import RingStormEngine
import Testing

/// Issue 12, item 7: the small, fast versions of `Scripts/hostile-peers`' cases against the server
/// (huge length prefixes, slowloris, an RST storm; garbage is `ServerTests.protocolViolationsGetErrorFrames`,
/// never-reading clients `HostilePeerTests`).
@Suite(.timeLimit(.minutes(1))) struct HostileClientTests {
    /// A length prefix of 0xFFFFFFFF is refused from the header alone: ERROR frame_too_large and the
    /// close, with nothing buffered for the 4 GiB it announces.
    @Test(arguments: Backend.allCases)
    func hugeLengthPrefixesAreRefusedFromTheHeader(backend: Backend) async throws {
        let server = try RingStormServer(configuration: .testing(backend))
        let port = server.address.port
        let clients = 20
        let ends = try await onThread { () -> [ServerTestReceived] in
            try (0..<clients).map { _ in
                let client = try ServerTestClient(port: port)
                client.send(bytes: [0xFF, 0xFF, 0xFF, 0xFF, FrameType.request.rawValue] + [UInt8](repeating: 7, count: 1000))
                #expect(try client.receiveFrame() == .error(code: ErrorCode.frameTooLarge.rawValue))
                return client.receive()
            }
        }
        // Closed with the rest of our bytes unread: RST (or FIN if they were read first).
        #expect(ends.allSatisfy { $0 == .endOfStream || $0 == .failed(.connectionReset) }, "\(ends)")
        try await waitUntil { server.progress.report.protocolErrors == clients }
        server.stop()
        let report = server.wait()
        #expect(report.protocolErrors == clients)
        #expect(report.registered == 0)
    }

    /// A REGISTER dribbled one byte at a time (slowloris) does not keep the connection past the
    /// register deadline: the bytes still coming do not count as registering.
    @Test(arguments: Backend.allCases)
    func slowlorisIsClosedAtTheRegisterDeadline(backend: Backend) async throws {
        var configuration = RingStormServer.Configuration.testing(backend)
        configuration.registerTimeout = .milliseconds(300)
        let server = try RingStormServer(configuration: configuration)
        let port = server.address.port
        // REGISTER with 400 bytes of registration data: 413 bytes at one per 10 ms would take 4 s.
        let frame = ServerTestFrame.register(clientID: 9).bytes
        let register = [0, 0, 1, 0x99] + frame[4...] + [UInt8](repeating: 0x61, count: 400)
        let (sentBytes, answer, seconds) = try await onThread { () -> (Int, ServerTestFrame?, Double) in
            let client = try ServerTestClient(port: port)
            let start = monotonicNanoseconds()
            var sent = 0
            while sent < register.count && !LoadTestPeer.waitReadable(client.fd, milliseconds: 10) {
                client.send(bytes: [register[sent]])
                sent += 1
            }
            let answer = try? client.receiveFrame()
            return (sent, answer, Double(monotonicNanoseconds() - start) / 1e9)
        }
        #expect(answer == .error(code: ErrorCode.registerTimeout.rawValue))
        #expect(sentBytes < register.count, "the whole REGISTER went out before the server closed")
        #expect(seconds >= 0.3, "closed after \(seconds) s, before the register deadline")
        try await waitUntil { server.progress.report.registerTimeouts == 1 }
        server.stop()
        let report = server.wait()
        #expect(report.registerTimeouts == 1 && report.registered == 0)
    }

    /// Clients that register and then reset (`SO_LINGER {1,0}`): every RST is counted as
    /// `reset_by_peer`, none as a FIN, none lost.
    @Test(arguments: Backend.allCases)
    func anRSTStormIsCountedExactly(backend: Backend) async throws {
        let server = try RingStormServer(configuration: .testing(backend))
        let port = server.address.port
        let clients = 300
        try await onThread {
            var open: [(UInt64, ServerTestClient)] = []
            for i in 0..<clients {
                let client = try ServerTestClient(port: port)
                client.send(frame: .register(clientID: UInt64(i)))
                open.append((UInt64(i), client))
                guard open.count == 100 || i == clients - 1 else { continue }
                for (id, client) in open {
                    // Registered: the server holds the connection when the RST comes.
                    #expect(try client.receiveFrame() == .registered(clientID: id))
                    var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                    setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                    client.close()
                }
                open.removeAll()
            }
        }
        try await waitUntil { server.progress.report.resetByPeer == clients }
        server.stop()
        let report = server.wait()
        #expect(report.registered == clients)
        #expect(report.resetByPeer == clients)
        #expect(report.closedByPeer == 0)
    }
}
