import Glibc
import RingStormEngine
import Testing

extension EngineTests {
    @Suite("Tiny receive buffer ring")
    struct TinyBufferRing {
        /// Four 512-byte receive buffers for a hundred connections that each have 8 KiB waiting before
        /// the engine looks, twice: io_uring's receives run dry (ENOBUFS) and must be re-armed until every
        /// byte is echoed, in order, on every connection. epoll reads into its own buffer and must simply
        /// work the same.
        @Test(arguments: Backend.allCases)
        func everyByteIsEchoedInOrder(_ backend: Backend) throws {
            var configuration = testConfiguration()
            configuration.receiveBufferCount = 4
            configuration.receiveBufferSize = 512
            let (engine, _, address) = try engineListening(backend, configuration: configuration)
            let server = EchoServer(engine)
            let connections = 100, perRound = 8 * 1024, rounds = 2

            var peers: [BlockingSocket] = []
            for _ in 0..<connections { peers.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
            var sent = [[UInt8]](repeating: [], count: connections)
            var back = [[UInt8]](repeating: [], count: connections)
            for round in 0..<rounds {
                for (c, peer) in peers.enumerated() {
                    let data = payload(perRound, seed: UInt64(round * 1_000 + c))
                    try peer.sendAll(data)
                    sent[c] += data
                }
                let done = try server.run(seconds: 10) {
                    for (c, peer) in peers.enumerated() where back[c].count < sent[c].count {
                        while case .data(let d) = peer.receive(wait: false) { back[c] += d }
                    }
                    return (0..<connections).allSatisfy { back[$0].count >= sent[$0].count }
                }
                let short = (0..<connections).filter { back[$0].count < sent[$0].count }
                #expect(done, "round \(round): \(short.count) connections short, e.g. #\(short.first ?? -1): \(short.first.map { back[$0].count } ?? 0) of \(sent[0].count) B")
                if !done { break }
            }
            for c in 0..<connections {
                #expect(firstDifference(back[c], sent[c]) == nil, "connection \(c)")
            }
            #expect(server.accepted.count == connections)
            for peer in peers { peer.close() }
            #expect(try server.run(seconds: 5) { server.closed.count == connections })
            #expect(engine.openConnections == 0)

            let stats = engine.statistics
            #expect(stats.bytesReceived == connections * perRound * rounds)
            if backend == .uring {
                // 8 KiB waiting needs 16 buffers of 512 B: a multishot receive cannot but run dry.
                #expect(stats.bufferExhaustions > 0)
                #expect(stats.outcomes.count(.receive, .noBuffers) == stats.bufferExhaustions)
            } else {
                #expect(stats.bufferExhaustions == 0)
            }
            // Running dry is not an end of the connection.
            #expect(Set(server.readEnds.values) == [.closedByPeer])
        }
    }
}
