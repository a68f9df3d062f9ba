import Glibc
import RingStormEngine
import Testing

/// Whether the running kernel is at least `major.minor` (`uname`'s release).
func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool {
    var name = utsname()
    guard uname(&name) == 0 else { return false }
    let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    guard parts.count == 2 else { return false }
    return parts[0] > major || (parts[0] == major && parts[1] >= minor)
}

extension EngineTests {
    /// `UringFeatures.directDescriptors`: accepted sockets in the ring's fixed file table. Driven from
    /// the test's thread (the peers' calls and the engine's polls interleave in a fixed order), so
    /// "what the client had sent before the engine accepted" is exact.
    @Suite("io_uring direct descriptors for accepted sockets")
    struct DirectDescriptors {
        /// An io_uring echo server with direct descriptors, `table` entries (nil: one per slot).
        private func directServer(maxConnections: Int = 64, table: Int? = nil) throws -> (any NetworkEngine, ListenerID, SocketAddress, EchoServer)? {
            var configuration = testConfiguration(maxConnections: maxConnections)
            configuration.uringFeatures = [.incrementalBuffers, .directDescriptors]
            configuration.directTableSize = table
            let (engine, listener, address) = try engineListening(.uring, configuration: configuration)
            let stats = engine.statistics
            let inUse = stats.features.contains { $0.hasPrefix("direct_descriptors(") }
            // Kernel 6.7 has everything the feature needs; an older one must say why it went without.
            guard kernelAtLeast(6, 7) else {
                #expect(!inUse || stats.notes.isEmpty)
                if !inUse { #expect(stats.notes.contains { $0.contains("direct descriptors") }, "\(stats.notes)") }
                return nil
            }
            try #require(inUse, "direct descriptors not in use on a 6.7+ kernel: \(stats.notes)")
            return (engine, listener, address, EchoServer(engine))
        }

        @Test func theFeatureIsNamedAndOffByDefault() throws {
            #expect(try UringFeatures.parse("direct-descriptors").get() == .directDescriptors)
            #expect(try UringFeatures.parse("none,direct-descriptors,incremental-buffers").get() == [.directDescriptors, .incrementalBuffers])
            #expect(!UringFeatures.defaults.contains(.directDescriptors))
            #expect(UringFeatures.directDescriptors.names == "direct-descriptors")
        }

        /// The table is one entry per slot, but never more than RLIMIT_NOFILE (the kernel answers EMFILE):
        /// capped with a note. Either refusal at set-up keeps descriptors, with a note naming the errno.
        @Test func tableSizeAndProbe() {
            #expect(FeatureProbe.directTableSize(requested: 1024, slots: 1024, fileLimit: 20_000) == (1024, nil))
            #expect(FeatureProbe.directTableSize(requested: 4, slots: 1024, fileLimit: 20_000) == (4, nil))
            let capped = FeatureProbe.directTableSize(requested: 30_000, slots: 30_000, fileLimit: 20_000)
            #expect(capped.size == 20_000)
            #expect(capped.note?.contains("RLIMIT_NOFILE") == true)
            #expect(FeatureProbe.directDescriptors(setOptionResult: 0, registrationResult: 0) == (true, nil))
            let old = FeatureProbe.directDescriptors(setOptionResult: -EOPNOTSUPP, registrationResult: nil)
            #expect(old.use == false)
            #expect(old.note?.contains("EOPNOTSUPP") == true && old.note?.contains("6.7") == true)
            let refused = FeatureProbe.directDescriptors(setOptionResult: 0, registrationResult: -EMFILE)
            #expect(refused.use == false)
            #expect(refused.note?.contains("EMFILE") == true)
        }

        /// Many clients, many messages of odd sizes each: every byte comes back in order through
        /// fixed-file receives and sends. Three rounds through an 8-entry table: the entries `close_direct`
        /// frees are taken again (a leak would fail the second round with ENFILE).
        @Test func echoesEveryMessageOfEveryClientAndReusesTheTable() throws {
            guard let (engine, _, address, server) = try directServer(maxConnections: 64, table: 8) else { return }
            let clients = 8, messages = 25
            for round in 0..<3 {
                var peers: [BlockingSocket] = []
                for _ in 0..<clients { peers.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
                #expect(try server.run(seconds: 5) { server.accepted.count == (round + 1) * clients })
                var sent = [[UInt8]](repeating: [], count: clients)
                var back = [[UInt8]](repeating: [], count: clients)
                for m in 0..<messages {
                    for (c, peer) in peers.enumerated() {
                        let size = 1 + (c * 31 + m * 17) % 700
                        let data = payload(size, seed: UInt64(round * 100_000 + m * 100 + c))
                        try peer.sendAll(data)
                        sent[c] += data
                    }
                    _ = try server.run(seconds: 0.005) { false }
                }
                let done = try server.run(seconds: 10) {
                    for (c, peer) in peers.enumerated() where back[c].count < sent[c].count {
                        while case .data(let d) = peer.receive(wait: false) { back[c] += d }
                    }
                    return (0..<clients).allSatisfy { back[$0].count >= sent[$0].count }
                }
                #expect(done)
                for c in 0..<clients { #expect(firstDifference(back[c], sent[c]) == nil, "round \(round), client \(c)") }
                for peer in peers { peer.close() }
                #expect(try server.run(seconds: 5) { server.closed.count == (round + 1) * clients })
            }
            let stats = engine.statistics
            #expect(stats.directTableFull == 0)
            #expect(server.acceptFailures.isEmpty)
            #expect(stats.outcomes.count(.close, .success) == 3 * clients)
            #expect(Set(server.readEnds.values) == [.closedByPeer])
            #expect(engine.openConnections == 0)
        }

        /// An abortive close of a direct descriptor still resets the peer: `SO_LINGER {1, 0}` went
        /// through the ring before `close_direct`. An orderly one sends FIN; a peer's RST is reported.
        @Test func abortiveOrderlyAndPeerCloses() throws {
            guard let (engine, _, address, server) = try directServer() else { return }
            let aborted = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            let finished = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            let resetting = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 2) { server.accepted.count == 3 })
            for peer in [aborted, finished, resetting] { #expect(try server.roundTrip(peer, payload(40, seed: 5))) }
            let ids = server.accepted
            engine.close(ids[0], mode: .abortive)
            engine.close(ids[1], mode: .orderly)
            #expect(try server.run(seconds: 2) { server.closed.count == 2 })
            #expect(aborted.receive() == .failed(.connectionReset))
            #expect(finished.receive() == .endOfStream)
            resetting.reset()
            #expect(try server.run(seconds: 2) { server.closed.count == 3 })
            #expect(server.readEnds[ids[2]] == .resetByPeer)
            #expect(engine.openConnections == 0)
            #expect(!engine.statistics.notes.contains { $0.contains("SO_LINGER") }, "\(engine.statistics.notes)")
        }

        /// The table full: the accept completion is ENFILE, and the kernel has already taken the
        /// connection off the queue and closed it: a client whose data had arrived sees RST, one that
        /// sent nothing sees FIN. Each is counted (`directTableFull`, and an ENFILE `.acceptFailed`
        /// that pauses the listener). Resumed while the table is still full, the listener does not
        /// accept (which would drop the next queued client too): the client waits in the queue, and is
        /// accepted once a close frees an entry.
        @Test func aFullTableDropsTheClientAndTheListenerWaitsForRoom() throws {
            guard let (engine, listener, address, server) = try directServer(maxConnections: 16, table: 2) else { return }
            let first = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            let second = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 2) { server.accepted.count == 2 })
            #expect(try server.roundTrip(first, payload(30, seed: 1)))

            // Connected and its data sent before the engine looks: the dropped connection had unread bytes.
            let talker = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            try talker.sendAll(payload(75, seed: 2))
            #expect(try server.run(seconds: 2) { server.acceptFailures.count == 1 })
            #expect(server.acceptFailures == [.fileTableFull])
            #expect(engine.statistics.directTableFull == 1)
            #expect(talker.receive() == .failed(.connectionReset))

            // Resumed with the table still full: no accept is armed, the next client waits queued.
            engine.resumeAccepting(listener)
            let waiting = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            try waiting.sendAll(payload(20, seed: 3))
            _ = try pollFor(engine, seconds: 0.3, server.handle)
            #expect(server.accepted.count == 2)
            #expect(server.acceptFailures.count == 1, "\(server.acceptFailures)")
            #expect(waiting.receive(wait: false) == .wouldBlock)

            // A close frees an entry: the queued client is accepted and answered.
            first.close()
            #expect(try server.run(seconds: 2) { server.accepted.count == 3 })
            var back: [UInt8] = []
            _ = try server.run(seconds: 2) {
                while case .data(let d) = waiting.receive(wait: false) { back += d }
                return back.count >= 20
            }
            #expect(back == payload(20, seed: 3))

            // Full again (second, waiting): a client that sends nothing is dropped with FIN.
            let silent = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 2) { server.acceptFailures.count == 2 })
            #expect(server.acceptFailures.last == .fileTableFull)
            #expect(silent.receive() == .endOfStream)
            let stats = engine.statistics
            #expect(stats.directTableFull == 2)
            #expect(stats.outcomes.count(.accept, .fileTableFull) == 2)
            #expect(stats.slotExhaustions == 0)
            #expect(try server.roundTrip(second, payload(10, seed: 4)))
        }

        /// Out of slots with room in the table (a connect of the engine's own holds a slot but no
        /// entry): the accepted direct descriptor is closed through the ring at once, the client sees
        /// its stream end, it counts as a slot exhaustion, and its entry is free again: once the slots
        /// are, two clients fill the two-entry table without an ENFILE.
        @Test func anAcceptWithoutASlotIsClosedAndItsEntryFreed() throws {
            guard let (engine, _, address, server) = try directServer(maxConnections: 2, table: 2) else { return }
            // The engine connects to its own listener: the connect and the accepted side take both slots.
            let outbound = try engine.connect(to: address, from: nil, timeoutNanoseconds: 0)
            #expect(try server.run(seconds: 2) { server.accepted.count == 1 })
            let refused = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 2) { engine.statistics.slotExhaustions == 1 })
            // The close goes out with the next poll.
            var end = Received.wouldBlock
            _ = try server.run(seconds: 2) { end = refused.receive(wait: false); return end != .wouldBlock }
            #expect(end == .endOfStream)
            engine.close(outbound, mode: .orderly)
            #expect(try server.run(seconds: 2) { engine.openConnections == 0 })
            let peers = try (0..<2).map { _ in try BlockingSocket.connect(to: address, timeoutSeconds: 2) }
            #expect(try server.run(seconds: 2) { server.accepted.count == 3 })
            for (k, peer) in peers.enumerated() { #expect(try server.roundTrip(peer, payload(16, seed: UInt64(k)))) }
            #expect(server.acceptFailures.isEmpty)
            #expect(engine.statistics.directTableFull == 0)
        }

        /// Dropping the engine closes its direct descriptors with the ring: the peer's stream ends.
        @Test func droppingTheEngineClosesItsConnections() throws {
            let peer: BlockingSocket
            do {
                guard let (_, _, address, server) = try directServer() else { return }
                peer = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
                #expect(try server.run(seconds: 2) { server.accepted.count == 1 })
                #expect(try server.roundTrip(peer, payload(10, seed: 9)))
            }
            let end = peer.receive()
            #expect(end == .endOfStream || end == .failed(.connectionReset), "\(end)")
        }
    }
}
