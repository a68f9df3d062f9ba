import Glibc
import RingStormEngine
import Testing

/// A mismatch found by a peer thread; it stops that peer at the first one.
struct EchoMismatch: Error, CustomStringConvertible {
    let description: String
}

/// Receives the echo of `sent` on `socket` and checks it byte for byte.
func expectEcho(of sent: [UInt8], on socket: BlockingSocket, _ label: String) throws {
    let back = try socket.receiveExactly(sent.count)
    if let at = firstDifference(back, sent) {
        throw EchoMismatch(description: "\(label): echo of \(sent.count) B differs from byte \(at) on")
    }
}

extension EngineTests {
    @Suite("Echo round trips")
    struct Echo {
        static let sizes = [1, 2, 100, 1460, 4095, 4096, 4097, 16_384, 65_535, 65_536, 65_537, 262_144]

        /// One connection per size, 1 B to 256 KiB, sent in pieces: the bytes come back complete and
        /// in order, then SHUT_WR from the peer ends the echo with a FIN back.
        @Test(arguments: Backend.allCases)
        func everySizeComesBackInOrder(_ backend: Backend) throws {
            let (engine, _, address) = try engineListening(backend)
            let server = EchoServer(engine)
            let sizes = Self.sizes
            let peer = PeerThread.start { () -> String? in
                do {
                    for (k, size) in sizes.enumerated() {
                        let socket = try BlockingSocket.connect(to: address, timeoutSeconds: 3)
                        let data = payload(size, seed: UInt64(k))
                        try socket.sendAll(data, chunk: size > 4096 ? 7_001 : .max)
                        try expectEcho(of: data, on: socket, "\(size) B")
                        socket.shutdownWrite()
                        let end = socket.receive()
                        guard end == .endOfStream else { return "\(size) B: after SHUT_WR the peer got \(end), not end of stream" }
                    }
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            let done = try server.run(seconds: 10) { peer.isFinished && server.closed.count == sizes.count }
            #expect(peer.join() == nil)
            #expect(done, "peer finished: \(peer.isFinished), open: \(engine.openConnections)")
            #expect(server.accepted.count == sizes.count)
            #expect(engine.openConnections == 0)
            #expect(server.bytesReceived == sizes.reduce(0, +))
            #expect(Set(server.readEnds.values) == [.closedByPeer])
            #expect(server.sendFailures.isEmpty)
            #expect(server.eventsAfterEnd == [])
            let stats = engine.statistics
            #expect(stats.bytesReceived == sizes.reduce(0, +))
            #expect(stats.bytesSent == sizes.reduce(0, +))
        }

        /// Same over IPv6 loopback.
        @Test(arguments: Backend.allCases)
        func echoOverIPv6(_ backend: Backend) throws {
            let (engine, _, address) = try engineListening(backend, on: "::1")
            #expect(address.isIPv6)
            #expect(address.host == "::1")
            let server = EchoServer(engine)
            let peer = PeerThread.start { () -> String? in
                do {
                    let socket = try BlockingSocket.connect(to: address, timeoutSeconds: 3)
                    let data = payload(100_000, seed: 6)
                    try socket.sendAll(data, chunk: 3_000)
                    try expectEcho(of: data, on: socket, "IPv6")
                    socket.close()
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            let done = try server.run(seconds: 5) { peer.isFinished && server.closed.count == 1 }
            #expect(peer.join() == nil)
            #expect(done)
            #expect(server.accepted.count == 1)
            #expect(server.bytesReceived == 100_000)
        }

        /// 200 connections open at once (4 peer threads × 50, held open by a barrier until every echo
        /// is back), three rounds of messages of different sizes on each.
        @Test(arguments: Backend.allCases)
        func twoHundredConcurrentConnections(_ backend: Backend) throws {
            let (engine, _, address) = try engineListening(backend)
            let server = EchoServer(engine)
            let threads = 4, perThread = 50, rounds = 3
            let connected = SharedCounter(), echoed = SharedCounter()
            @Sendable func message(_ t: Int, _ c: Int, _ round: Int) -> [UInt8] {
                let seed = UInt64(t * 1_000_000 + c * 1_000 + round)
                return payload(1 + Int(seed % 1_999), seed: seed)
            }
            let expectedBytes = (0..<threads).reduce(0) { sum, t in
                sum + (0..<perThread).reduce(0) { s, c in s + (0..<rounds).reduce(0) { $0 + message(t, c, $1).count } }
            }
            let peers = (0..<threads).map { t in
                PeerThread.start { () -> String? in
                    var sockets: [BlockingSocket] = []
                    defer { connected.increment(); echoed.increment() } // never leave the others waiting
                    do {
                        for _ in 0..<perThread { sockets.append(try BlockingSocket.connect(to: address, timeoutSeconds: 3)) }
                        connected.increment()
                        guard connected.wait(forAtLeast: threads, seconds: 3) else { return "thread \(t): the other peers never connected" }
                        for round in 0..<rounds {
                            for (c, socket) in sockets.enumerated() { try socket.sendAll(message(t, c, round)) }
                            for (c, socket) in sockets.enumerated() {
                                try expectEcho(of: message(t, c, round), on: socket, "thread \(t) connection \(c) round \(round)")
                            }
                        }
                        echoed.increment()
                        _ = echoed.wait(forAtLeast: threads, seconds: 3)
                        for socket in sockets { socket.close() }
                        return nil
                    } catch {
                        return "thread \(t): \(error)"
                    }
                }
            }
            let done = try server.run(seconds: 15) { peers.allSatisfy(\.isFinished) && server.closed.count == threads * perThread }
            for peer in peers { #expect(peer.join() == nil) }
            #expect(done, "closed \(server.closed.count), open \(engine.openConnections)")
            #expect(server.accepted.count == threads * perThread)
            #expect(server.maxOpenConnections == threads * perThread)
            #expect(engine.openConnections == 0)
            #expect(server.bytesReceived == expectedBytes)
            #expect(server.eventsAfterEnd == [])
            #expect(engine.statistics.outcomes.count(.accept, .success) == threads * perThread)
        }

        /// A peer that writes 32 MiB without reading pushes the engine's unsent bytes past the bound:
        /// the engine stops reading (a backpressure pause) instead of queueing without limit, while the
        /// peer still has bytes to send; once the peer reads, reading resumes and every byte comes back
        /// in order, with the connection still open.
        @Test(arguments: Backend.allCases)
        func backpressurePausesReadingAndLosesNothing(_ backend: Backend) throws {
            var configuration = testConfiguration()
            configuration.maxPendingBytesPerConnection = 64 * 1024
            let (engine, _, address) = try engineListening(backend, configuration: configuration)
            let server = EchoServer(engine)
            let peer = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            let data = payload(32 << 20, seed: 42)
            var sent = 0
            var back: [UInt8] = []
            back.reserveCapacity(data.count)
            func write() { sent += (try? peer.trySend(data[sent...])) ?? 0 }

            // Phase 1: write only, never read, until the engine has stopped reading for 200 ms.
            var lastReceived = -1
            var stillSince = monotonicNanoseconds()
            let stalled = try server.run(seconds: 5) {
                write()
                if server.bytesReceived != lastReceived {
                    lastReceived = server.bytesReceived
                    stillSince = monotonicNanoseconds()
                }
                return monotonicNanoseconds() - stillSince > 200_000_000
            }
            let connection = try #require(server.accepted.first)
            let pending = engine.pendingBytes(connection)
            let stats = engine.statistics
            #expect(stalled, "the engine never stopped reading: \(server.bytesReceived) B read, \(sent) B sent")
            // It stopped because of the bound, not because the peer ran out: bytes are still unsent.
            #expect(sent < data.count, "all \(data.count) B went into kernel buffers; use more data")
            #expect(stats.backpressurePauses >= 1)
            #expect(pending > configuration.maxPendingBytesPerConnection / 2, "\(pending) B pending while paused")
            print("[\(backend)] backpressure: paused with \(pending) B pending after reading \(server.bytesReceived) B; peer sent \(sent) B")

            // Phase 2: read and write until everything is back.
            let complete = try server.run(seconds: 5) {
                write()
                while case .data(let d) = peer.receive(wait: false) { back += d }
                return back.count >= data.count
            }
            #expect(complete, """
                echoed \(back.count) of \(data.count) B (sent \(sent)); pending \(engine.pendingBytes(connection)); \
                readEnds \(server.readEnds); outcomes \(engine.statistics.outcomes.byName); \
                pauses \(engine.statistics.backpressurePauses)
                """)
            #expect(firstDifference(back, data) == nil)
            #expect(server.readEnds.isEmpty, "the pause ended the connection's reading: \(server.readEnds)")
            #expect(server.sendFailures.isEmpty)
            #expect(engine.openConnections == 1)
        }
    }
}
