import Glibc
import RingStormEngine
import Testing

/// One accepted connection with a blocking peer, driven from the test's thread: the peer's calls and
/// the engine's polls interleave in a fixed order, so "what arrived before the engine looked" is exact.
struct OneConnection {
    let engine: any NetworkEngine
    let server: EchoServer
    let peer: BlockingSocket
    let connection: ConnectionID

    init(_ backend: Backend, closeOnReadEnd: Bool = true) throws {
        let (engine, _, address) = try engineListening(backend)
        let server = EchoServer(engine)
        server.closeOnReadEnd = closeOnReadEnd
        let peer = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
        try #require(try server.run(seconds: 2) { server.accepted.count == 1 }, "the engine never accepted")
        self.engine = engine
        self.server = server
        self.peer = peer
        connection = server.accepted[0]
    }

    /// Sends `bytes` from the peer and polls until their echo is back: the connection works.
    func roundTrip(_ bytes: [UInt8]) throws -> Bool {
        try server.roundTrip(peer, bytes)
    }

    /// Polls until the connection's receive side ended; its outcome.
    func readEnd() throws -> Outcome? {
        _ = try server.run(seconds: 2) { server.readEnds[connection] != nil }
        return server.readEnds[connection]
    }

    /// Polls until the connection's `.closed` came.
    func closed() throws -> Bool {
        try server.run(seconds: 2) { server.closed.contains(connection) }
    }
}

extension EngineTests {
    /// RST versus FIN, with the engine as the receiver and as the closer.
    @Suite("Peer and engine closes")
    struct Closes {
        // MARK: The engine as receiver

        @Test(arguments: Backend.allCases)
        func peerResetIsResetByPeer(_ backend: Backend) throws {
            let c = try OneConnection(backend)
            #expect(try c.roundTrip(payload(100, seed: 1)))
            c.peer.reset()
            #expect(try c.readEnd() == .resetByPeer)
            #expect(try c.closed())
            #expect(c.engine.openConnections == 0)
            #expect(c.engine.statistics.outcomes.count(.receive, .resetByPeer) == 1)
            #expect(c.server.eventsAfterEnd == [])
        }

        @Test(arguments: Backend.allCases)
        func peerShutdownIsClosedByPeerAndLeavesTheConnectionHalfOpen(_ backend: Backend) throws {
            let c = try OneConnection(backend, closeOnReadEnd: false)
            #expect(try c.roundTrip(payload(100, seed: 2)))
            c.peer.shutdownWrite()
            #expect(try c.readEnd() == .closedByPeer)
            // Half-closed: the engine may still send, then close in order.
            #expect(c.engine.openConnections == 1)
            let goodbye = payload(3_000, seed: 3)
            goodbye.withUnsafeBytes { c.engine.send(c.connection, $0) }
            c.engine.close(c.connection, mode: .orderly)
            #expect(try c.closed())
            let (bytes, end) = c.peer.receiveUntilEnd()
            #expect(bytes == goodbye)
            #expect(end == .endOfStream)
            #expect(c.engine.statistics.outcomes.count(.receive, .closedByPeer) == 1)
        }

        @Test(arguments: Backend.allCases)
        func peerCloseWithNothingUnreadIsClosedByPeer(_ backend: Backend) throws {
            let c = try OneConnection(backend)
            #expect(try c.roundTrip(payload(100, seed: 4)))
            c.peer.close()
            #expect(try c.readEnd() == .closedByPeer)
            #expect(try c.closed())
            #expect(c.engine.openConnections == 0)
        }

        /// A peer that closes with bytes of the engine's still unread sends RST, not FIN.
        @Test(arguments: Backend.allCases)
        func peerCloseWithUnreadBytesIsResetByPeer(_ backend: Backend) throws {
            let c = try OneConnection(backend)
            let greeting = payload(1_000, seed: 5)
            greeting.withUnsafeBytes { c.engine.send(c.connection, $0) }
            #expect(try c.server.run(seconds: 2) { c.peer.availableBytes() == greeting.count })
            c.peer.close()
            #expect(try c.readEnd() == .resetByPeer)
            #expect(try c.closed())
        }

        /// Data and the FIN behind it arrive while the engine is not polling: both must be reported
        /// (the data, then `.readEnded(.closedByPeer)`), whatever order the kernel signals them in.
        @Test(arguments: Backend.allCases)
        func dataThenFINArrivingTogetherAreBothReported(_ backend: Backend) throws {
            let c = try OneConnection(backend, closeOnReadEnd: false)
            c.server.recordBytes = true
            c.server.echo = false
            let data = payload(100, seed: 7)
            try c.peer.sendAll(data)
            c.peer.shutdownWrite()
            #expect(try c.readEnd() == .closedByPeer)
            #expect(c.server.received[c.connection] == data)
            #expect(c.server.kinds[c.connection] == [.accepted, .received, .readEnded])
        }

        /// The same before the engine accepted: the connection is queued with its data and FIN.
        @Test(arguments: Backend.allCases)
        func dataThenFINQueuedBeforeAcceptAreBothReported(_ backend: Backend) throws {
            let (engine, _, address) = try engineListening(backend)
            let server = EchoServer(engine)
            server.recordBytes = true
            server.echo = false
            server.closeOnReadEnd = false
            let peer = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            let data = payload(100, seed: 8)
            try peer.sendAll(data)
            peer.shutdownWrite()
            let ended = try server.run(seconds: 2) { server.accepted.count == 1 && server.readEnds[server.accepted[0]] != nil }
            #expect(ended, "kinds seen: \(server.kinds)")
            if let id = server.accepted.first {
                #expect(server.readEnds[id] == .closedByPeer)
                #expect(server.received[id] == data)
            }
        }

        /// Data and then RST while the engine is not polling: the data is delivered first (the kernel
        /// keeps it queued), then `.readEnded(.resetByPeer)`.
        @Test(arguments: Backend.allCases)
        func dataThenRSTArrivingTogetherAreBothReported(_ backend: Backend) throws {
            let c = try OneConnection(backend, closeOnReadEnd: false)
            c.server.recordBytes = true
            c.server.echo = false
            let data = payload(100, seed: 9)
            try c.peer.sendAll(data)
            c.peer.reset()
            #expect(try c.readEnd() == .resetByPeer)
            #expect(c.server.received[c.connection] == data)
        }

        // MARK: The engine as closer

        /// Dropping the engine closes what it holds: the peer's stream ends.
        @Test(arguments: Backend.allCases)
        func droppingTheEngineClosesItsConnections(_ backend: Backend) throws {
            var c: OneConnection? = try OneConnection(backend)
            let peer = c!.peer
            #expect(try c!.roundTrip(payload(10, seed: 14)))
            c = nil
            let end = peer.receive()
            #expect(end == .endOfStream || end == .failed(.connectionReset), "\(end)")
        }

        @Test(arguments: Backend.allCases)
        func abortiveCloseResetsThePeer(_ backend: Backend) throws {
            let c = try OneConnection(backend)
            #expect(try c.roundTrip(payload(10, seed: 10)))
            c.engine.close(c.connection, mode: .abortive)
            #expect(try c.closed())
            #expect(c.peer.receive() == .failed(.connectionReset))
            #expect(c.engine.openConnections == 0)
        }

        @Test(arguments: Backend.allCases)
        func orderlyCloseSendsFIN(_ backend: Backend) throws {
            let c = try OneConnection(backend)
            #expect(try c.roundTrip(payload(10, seed: 11)))
            c.engine.close(c.connection, mode: .orderly)
            #expect(try c.closed())
            #expect(c.peer.receive() == .endOfStream)
            #expect(c.engine.openConnections == 0)
        }

        /// An orderly close right after a large send delivers every queued byte, then FIN.
        @Test(arguments: Backend.allCases)
        func orderlyCloseSendsWhatIsQueuedFirst(_ backend: Backend) throws {
            let c = try OneConnection(backend)
            let data = payload(1 << 20, seed: 12)
            data.withUnsafeBytes { c.engine.send(c.connection, $0) }
            c.engine.close(c.connection, mode: .orderly)
            var back: [UInt8] = []
            var end: Received?
            let finished = try c.server.run(seconds: 5) {
                while end == nil {
                    switch c.peer.receive(wait: false) {
                    case .data(let d): back += d
                    case .wouldBlock: return false
                    case let other: end = other
                    }
                }
                return c.server.closed.contains(c.connection)
            }
            #expect(finished)
            #expect(end == .endOfStream)
            #expect(back.count == data.count)
            #expect(firstDifference(back, data) == nil)
        }

        /// An abortive close drops what is queued: RST, not the bytes (16 MiB is more than the kernel's
        /// buffers take at once, so some are still queued in the engine when it closes).
        @Test(arguments: Backend.allCases)
        func abortiveCloseDropsWhatIsQueued(_ backend: Backend) throws {
            let c = try OneConnection(backend)
            let data = payload(16 << 20, seed: 13)
            data.withUnsafeBytes { c.engine.send(c.connection, $0) }
            c.engine.close(c.connection, mode: .abortive)
            #expect(try c.closed())
            let (bytes, end) = c.peer.receiveUntilEnd()
            #expect(end == .failed(.connectionReset))
            #expect(bytes.count < data.count)
            // The old identity is dead: calls on it are ignored.
            #expect(c.engine.pendingBytes(c.connection) == 0)
            data.withUnsafeBytes { c.engine.send(c.connection, $0) }
            c.engine.close(c.connection, mode: .orderly)
            #expect(try pollFor(c.engine, seconds: 0.1, c.server.handle) > 0)
            #expect(c.server.closed.count == 1)
        }
    }
}
