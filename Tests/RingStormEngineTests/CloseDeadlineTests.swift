import Glibc
import RingStormEngine
import Testing

extension EngineTests {
    /// Issue 12, item 1: a peer that never reads cannot pin a closing connection. An orderly close
    /// waits for its queue to drain at most `closeTimeoutNanoseconds`, then becomes abortive and counts
    /// `drain_timeout`; while it waits the connection is not read from, on either backend.
    @Suite("Close deadline")
    struct CloseDeadline {
        /// An accepted connection whose peer never reads, with `queued` bytes sent to it (more than the
        /// kernel's buffers hold, so some stay in the engine's queue).
        struct Stuck {
            let engine: any NetworkEngine
            let server: EchoServer
            let peer: BlockingSocket
            let connection: ConnectionID

            init(_ backend: Backend, closeTimeout: Int64, queued: Int = 24 << 20, maxPending: Int = 1 << 20) throws {
                var configuration = testConfiguration()
                configuration.closeTimeoutNanoseconds = closeTimeout
                configuration.maxPendingBytesPerConnection = maxPending
                let (engine, _, address) = try engineListening(backend, configuration: configuration)
                let server = EchoServer(engine)
                server.echo = false
                server.closeOnReadEnd = false
                let peer = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
                try #require(try server.run(seconds: 2) { server.accepted.count == 1 }, "the engine never accepted")
                let connection = server.accepted[0]
                let bytes = payload(queued, seed: 12)
                bytes.withUnsafeBytes { engine.send(connection, $0) }
                // Let the kernel take what it will; the rest stays queued because the peer never reads.
                var last = -1
                var stillSince = monotonicNanoseconds()
                _ = try server.run(seconds: 3) {
                    let pending = engine.pendingBytes(connection)
                    if pending != last { last = pending; stillSince = monotonicNanoseconds() }
                    return monotonicNanoseconds() - stillSince > 150_000_000
                }
                try #require(engine.pendingBytes(connection) > 0, "the kernel took all \(queued) B; queue more")
                self.engine = engine
                self.server = server
                self.peer = peer
                self.connection = connection
            }
        }

        /// The orderly close of a connection whose peer never reads ends within the deadline: aborted,
        /// counted once as `drain_timeout`, the caller told (`.sendFailed`, then `.closed`), the slot and
        /// the descriptor released.
        @Test(arguments: Backend.allCases)
        func orderlyCloseThatCannotDrainIsAbortedAtTheDeadline(_ backend: Backend) throws {
            let timeout: Int64 = 300_000_000
            let stuck = try Stuck(backend, closeTimeout: timeout)
            let (engine, server, connection) = (stuck.engine, stuck.server, stuck.connection)
            let closedAt = monotonicNanoseconds()
            engine.close(connection, mode: .orderly)
            let closed = try server.run(seconds: 5) { server.closed.contains(connection) }
            let elapsed = monotonicNanoseconds() - closedAt
            #expect(closed, "still open \(Double(elapsed) / 1e9) s after the close; pending \(engine.pendingBytes(connection)) B")
            #expect(elapsed >= timeout, "closed after \(elapsed) ns, before the deadline")
            #expect(elapsed < timeout + 1_000_000_000, "closed only after \(Double(elapsed) / 1e9) s")
            #expect(server.sendFailures[connection] == .drainTimeout)
            let stats = engine.statistics
            #expect(stats.drainTimeouts == 1)
            #expect(stats.outcomes.count(.send, .drainTimeout) == 1)
            #expect(stats.outcomes.byName["send"]?["drain_timeout"] == 1)
            #expect(engine.openConnections == 0)
            // Aborted: the peer sees a reset, not an orderly end after the bytes.
            var end = stuck.peer.receive(wait: false)
            while case .data = end { end = stuck.peer.receive(wait: false) }
            #expect(end != .endOfStream, "the peer saw an orderly end: \(end)")
            print("[\(backend)] close deadline: closed \(Double(elapsed) / 1e6) ms after close(.orderly), peer: \(end)")
        }

        /// A connection that drains in time is closed in order and counts no `drain_timeout`, even after
        /// its deadline would have passed (the sweep skips it).
        @Test(arguments: Backend.allCases)
        func closeThatDrainsInTimeIsOrderly(_ backend: Backend) throws {
            let stuck = try Stuck(backend, closeTimeout: 2_000_000_000)
            let (engine, server, connection) = (stuck.engine, stuck.server, stuck.connection)
            engine.close(connection, mode: .orderly)
            var got = 0
            var end = Received.wouldBlock
            let closed = try server.run(seconds: 5) {
                loop: while true {
                    switch stuck.peer.receive(wait: false) {
                    case .data(let d): got += d.count
                    case let other: end = other; break loop
                    }
                }
                return server.closed.contains(connection) && end == .endOfStream
            }
            #expect(closed, "got \(got) B, end \(end)")
            #expect(got == 24 << 20)
            #expect(server.sendFailures.isEmpty)
            #expect(engine.statistics.drainTimeouts == 0)
        }

        /// While an orderly close drains, the connection is not read: what the peer sends then is never
        /// received, on either backend. (The bound is set above what is queued, so it is the close, not
        /// backpressure, that stops the reading.)
        @Test(arguments: Backend.allCases)
        func drainingConnectionIsNotRead(_ backend: Backend) throws {
            let stuck = try Stuck(backend, closeTimeout: 5_000_000_000, maxPending: 64 << 20)
            #expect(stuck.engine.statistics.backpressurePauses == 0)
            let (engine, server, connection) = (stuck.engine, stuck.server, stuck.connection)
            engine.close(connection, mode: .orderly)
            try pollFor(engine, seconds: 0.1, server.handle)  // io_uring: the receive's cancel completes
            let before = server.bytesReceived
            let junk = payload(200_000, seed: 3)
            var sent = 0
            try pollFor(engine, seconds: 0.4) { event in server.handle(event) }
            sent += try stuck.peer.trySend(junk[...])
            try pollFor(engine, seconds: 0.4) { event in server.handle(event) }
            #expect(sent > 0)
            #expect(server.bytesReceived == before, "read \(server.bytesReceived - before) B from a draining connection")
            #expect(!server.closed.contains(connection), "closed before its deadline")
            engine.close(connection, mode: .abortive)
            #expect(try server.run(seconds: 2) { server.closed.contains(connection) })
        }
    }
}
