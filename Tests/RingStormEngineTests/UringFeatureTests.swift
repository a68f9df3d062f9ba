import Glibc
import RingStormEngine
import Testing

extension EngineTests {
    @Suite("io_uring features: choosing, probing, and each feature's path")
    struct UringFeatureChoice {
        /// An io_uring echo server listening on loopback with `count` receive buffers of `size` bytes.
        private func echoServer(buffers count: Int, of size: Int,
                                features: UringFeatures) throws -> (any NetworkEngine, EchoServer, SocketAddress) {
            var configuration = testConfiguration()
            configuration.receiveBufferCount = count
            configuration.receiveBufferSize = size
            configuration.uringFeatures = features
            let (engine, _, address) = try engineListening(.uring, configuration: configuration)
            return (engine, EchoServer(engine), address)
        }

        @Test func featureListsParse() throws {
            #expect(try UringFeatures.parse("none").get() == [])
            #expect(try UringFeatures.parse("default").get() == .defaults)
            #expect(try UringFeatures.parse("incremental-buffers").get() == .incrementalBuffers)
            #expect(try UringFeatures.parse("none,Incremental-Buffers").get() == .incrementalBuffers)
            #expect(try UringFeatures.parse("bundles,incremental-buffers").get() == [.receiveBundles, .incrementalBuffers])
            #expect(try UringFeatures.parse("no-sqarray,send-zc").get() == [.noSQArray, .zeroCopySends])
            #expect(try UringFeatures.parse("default,send-zc").get() == [.incrementalBuffers, .zeroCopySends])
            #expect(!UringFeatures.defaults.contains(.noSQArray) && !UringFeatures.defaults.contains(.zeroCopySends))
            #expect(UringFeatures.parse("incremental-buffers,zerocopy") == .failure(.init(word: "zerocopy")))
            #expect(UringFeatures.parse("") == .failure(.init(word: "")))
            #expect(UringFeatures([]).names == "none")
            #expect(UringFeatures.incrementalBuffers.names == "incremental-buffers")
            // Every named feature parses back from its own name.
            for (name, feature) in UringFeatures.named { #expect(try UringFeatures.parse(name).get() == feature) }
        }

        /// Set-up's decision after registering the buffer ring with `IOU_PBUF_RING_INC`: kept when the
        /// kernel took it; dropped with a note on EINVAL (a kernel before 6.12); dropped silently on
        /// another error, which the plain registration then reports as its own.
        @Test func incrementalBufferProbe() {
            #expect(FeatureProbe.incrementalBuffers(registrationResult: 0) == (true, nil))
            let refused = FeatureProbe.incrementalBuffers(registrationResult: -EINVAL)
            #expect(refused.use == false)
            #expect(refused.note?.contains("IOU_PBUF_RING_INC") == true)
            #expect(FeatureProbe.incrementalBuffers(registrationResult: -ENOMEM) == (false, nil))
        }

        /// Bundles are used when asked for and the ring's features have IORING_FEAT_RECVSEND_BUNDLE
        /// (1 << 14); asked for on a kernel without it, they are dropped with a note.
        @Test func bundleProbe() {
            #expect(FeatureProbe.receiveBundles(requested: [], ringFeatures: 1 << 14) == (false, nil))
            #expect(FeatureProbe.receiveBundles(requested: .receiveBundles, ringFeatures: 1 << 14) == (true, nil))
            let missing = FeatureProbe.receiveBundles(requested: .receiveBundles, ringFeatures: 1 << 13)
            #expect(missing.use == false)
            #expect(missing.note?.contains("IORING_RECVSEND_BUNDLE") == true)
        }

        /// 8 KiB queued on one connection before the engine enters the kernel: a bundle takes it in one
        /// completion across sixteen 512-byte buffers (with incremental consumption, too), and the
        /// handler gets every buffer's bytes in order.
        @Test(arguments: [UringFeatures.receiveBundles, [.receiveBundles, .incrementalBuffers]])
        func bundleTakesSeveralQueuedMessages(_ features: UringFeatures) throws {
            let (engine, server, address) = try echoServer(buffers: 64, of: 512, features: features)
            let peer = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 5) { server.accepted.count == 1 })
            var sent: [UInt8] = []
            for round in 0..<4 {
                // Sixteen 512-byte messages, all queued before the engine looks (an odd one first, so
                // incremental consumption starts mid-buffer).
                var data = Array(payload(round == 0 ? 37 : 0, seed: 99).prefix(round == 0 ? 37 : 0))
                for m in 0..<16 { data += payload(512, seed: UInt64(round * 100 + m)) }
                try peer.sendAll(data)
                sent += data
                #expect(try server.run(seconds: 5) { server.bytesReceived == sent.count })
            }
            #expect(try server.run(seconds: 5) { engine.statistics.bytesSent == sent.count })
            let back = try peer.receiveExactly(sent.count)
            #expect(firstDifference(back, sent) == nil)
            let stats = engine.statistics
            let completions = stats.outcomes.count(.receive, .success)
            if !stats.notes.contains(where: { $0.contains("IORING_RECVSEND_BUNDLE") }) {
                // One buffer per completion would need at least 4 × 16 = 64.
                #expect(completions <= 16, "\(completions) receive completions for \(sent.count) B in 512-byte buffers")
            }
            peer.close()
            #expect(try server.run(seconds: 5) { server.closed.count == 1 })
            #expect(stats.bytesReceived == sent.count)
        }

        /// Many small messages of odd sizes on many connections through four 512-byte buffers: with
        /// incremental consumption each receive starts where the previous one (of any connection)
        /// stopped in the same buffer, and a wrong offset would echo another connection's bytes. Both
        /// with and without the feature, every byte comes back in order.
        @Test(arguments: [UringFeatures(), .incrementalBuffers, .receiveBundles, [.incrementalBuffers, .receiveBundles]])
        func smallMessagesShareBuffers(_ features: UringFeatures) throws {
            let (engine, server, address) = try echoServer(buffers: 4, of: 512, features: features)
            let connections = 40, messages = 30
            var peers: [BlockingSocket] = []
            for _ in 0..<connections { peers.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
            #expect(try server.run(seconds: 5) { server.accepted.count == connections })
            var sent = [[UInt8]](repeating: [], count: connections)
            var back = [[UInt8]](repeating: [], count: connections)
            for m in 0..<messages {
                for (c, peer) in peers.enumerated() {
                    let data = Array(payload(1 + (c * 7 + m * 13) % 97, seed: UInt64(m * 1_000 + c)).prefix(1 + (c * 7 + m * 13) % 97))
                    try peer.sendAll(data)
                    sent[c] += data
                }
                _ = try server.run(seconds: 0.01) { false }
            }
            let done = try server.run(seconds: 10) {
                for (c, peer) in peers.enumerated() where back[c].count < sent[c].count {
                    while case .data(let d) = peer.receive(wait: false) { back[c] += d }
                }
                return (0..<connections).allSatisfy { back[$0].count >= sent[$0].count }
            }
            #expect(done)
            for c in 0..<connections { #expect(firstDifference(back[c], sent[c]) == nil, "connection \(c)") }
            for peer in peers { peer.close() }
            #expect(try server.run(seconds: 5) { server.closed.count == connections })
            #expect(engine.statistics.bytesReceived == sent.map(\.count).reduce(0, +))
            #expect(Set(server.readEnds.values) == [.closedByPeer])
        }

        /// Many connections' small messages completing in one enter: whole buffers need one each and
        /// run a 4-buffer ring dry; incremental consumption packs them into one 4 KiB buffer. On a
        /// kernel that refuses the flag the engine says so and runs with whole buffers.
        @Test func incrementalConsumptionKeepsTheRingFromRunningDry() throws {
            let (engine, server, address) = try echoServer(buffers: 4, of: 4096, features: .incrementalBuffers)
            let connections = 100, rounds = 3
            var peers: [BlockingSocket] = []
            for _ in 0..<connections { peers.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
            #expect(try server.run(seconds: 5) { server.accepted.count == connections })
            for round in 0..<rounds {
                // All of them have arrived before the engine enters the kernel again.
                for (c, peer) in peers.enumerated() { try peer.sendAll(payload(64, seed: UInt64(round * 1_000 + c))) }
                let done = try server.run(seconds: 5) { server.bytesReceived == (round + 1) * connections * 64 }
                #expect(done)
            }
            // The last echoes go out with the next poll.
            #expect(try server.run(seconds: 5) { engine.statistics.bytesSent == rounds * connections * 64 })
            for (c, peer) in peers.enumerated() {
                let expected = (0..<rounds).flatMap { payload(64, seed: UInt64($0 * 1_000 + c)) }
                let back = try peer.receiveExactly(expected.count)
                #expect(firstDifference(back, expected) == nil, "connection \(c)")
            }
            let stats = engine.statistics
            if stats.notes.contains(where: { $0.contains("IOU_PBUF_RING_INC") }) {
                // Fallback: the run still worked with whole buffers (checked above).
                #expect(stats.bytesReceived == rounds * connections * 64)
            } else {
                #expect(stats.bufferExhaustions == 0, "64-byte messages ran a 4 × 4 KiB incremental ring dry")
            }
            for peer in peers { peer.close() }
            #expect(try server.run(seconds: 5) { server.closed.count == connections })
        }
    }
}
