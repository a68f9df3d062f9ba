import Foundation
import Glibc
import RingStorm
import RingStormEngine
import Testing

/// A `ringstorm`-protocol server that registers each connection and then misbehaves: one thread per
/// connection, blocking sockets bounded by `poll` timeouts.
final class HostileServer: @unchecked Sendable {
    enum Mode: Sendable {
        /// RST (`SO_LINGER {1,0}`) on the first REQUEST.
        case resetOnFirstRequest
        /// Half of the first RESPONSE, then close with nothing unread: FIN mid-response.
        case halfResponseThenClose
        /// REGISTER answered with bytes that are not a frame (an unknown type); the connection held.
        case garbageForRegister
    }

    let peer = LoadTestPeer(backlog: 64)

    init(_ mode: Mode, connections: Int) {
        let listener = peer.fd
        Thread {
            for _ in 0..<connections {
                guard LoadTestPeer.waitReadable(listener, milliseconds: 5000) else { return }
                let fd = accept(listener, nil, nil)
                if fd >= 0 { Thread { Self.serve(fd, mode) }.start() }
            }
        }.start()
    }

    func stop() { peer.closeListener() }

    private static func serve(_ fd: Int32, _ mode: Mode) {
        var decoder = FrameDecoder()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let until = monotonicNanoseconds() + 5_000_000_000
        func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        while monotonicNanoseconds() < until {
            guard LoadTestPeer.waitReadable(fd, milliseconds: 100) else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            var frames: [ServerTestFrame] = []
            do {
                _ = try buffer[0..<n].withUnsafeBytes { raw throws(ProtocolError) in
                    try decoder.feed(raw) { frames.append(ServerTestFrame($0)) }
                }
            } catch { break }
            for frame in frames {
                switch (frame, mode) {
                case (.register, .garbageForRegister):
                    send([0, 0, 0, 5, 0xEE, 1, 2, 3, 4])
                case (.register(let id), _):
                    send(ServerTestFrame.registered(clientID: id).bytes)
                case (.request, .resetOnFirstRequest):
                    var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                    Glibc.close(fd)
                    return
                case (.request(let sequence, let timestamp, let payload), .halfResponseThenClose):
                    let response = ServerTestFrame.response(sequence: sequence, timestamp: timestamp, payload: payload).bytes
                    send(Array(response[0..<response.count / 2]))
                    Glibc.close(fd)
                    return
                default:
                    break
                }
            }
        }
        Glibc.close(fd)
    }
}

/// Issue 12, item 7: the small, fast versions of `Scripts/hostile-peers`' hostile servers against the
/// load generator (the server that never reads is `HostilePeerTests.loadAgainstADeafServerIsBoundedAndHeldBack`).
/// Every connection ends with the one documented outcome, in the phase it was in.
@Suite(.timeLimit(.minutes(1))) struct HostileServerTests {
    func run(_ backend: Backend, _ mode: HostileServer.Mode, connections: Int = 4) throws -> LoadReport {
        let server = HostileServer(mode, connections: connections)
        defer { server.stop() }
        var c = LoadGenerator.Configuration(target: server.peer.address)
        c.backend = backend
        c.connections = connections
        c.pacing = .closedLoop(pipeline: 1)
        c.durationNanoseconds = 1_000_000_000
        c.requestTimeoutNanoseconds = Int64(3_000_000_000 * sanitizerScale)
        c.drainNanoseconds = 200_000_000
        return try LoadGenerator(configuration: c).runBlocking()
    }

    func failures(_ report: LoadReport) -> [String] {
        Phase.allCases.flatMap { phase in report.outcomes[phase].nonZero.map { "\(phase)/\($0.outcome.name)=\($0.count)" } }
    }

    @Test(arguments: Backend.allCases)
    func aServerThatResetsIsReset(backend: Backend) throws {
        let report = try run(backend, .resetOnFirstRequest)
        #expect(report.connections.established == 4)
        #expect(failures(report) == ["request/reset=4"])
    }

    /// A FIN after half a RESPONSE: the connection is `closed` in phase request; the half frame is
    /// neither answered nor a protocol error.
    @Test(arguments: Backend.allCases)
    func aServerThatClosesMidResponseIsClosed(backend: Backend) throws {
        let report = try run(backend, .halfResponseThenClose)
        #expect(report.connections.established == 4)
        #expect(report.requests.answered == 0)
        #expect(failures(report) == ["request/closed=4"])
    }

    @Test(arguments: Backend.allCases)
    func garbageForAnAnswerIsAProtocolError(backend: Backend) throws {
        let report = try run(backend, .garbageForRegister)
        #expect(report.connections.established == 4)
        #expect(failures(report) == ["register/protocol_error=4"])
    }
}
