import Glibc
import RingStormEngine
import Testing

extension EngineTests {
    @Suite("io_uring zero-copy sends (IORING_OP_SEND_ZC)")
    struct UringZeroCopy {
        private func zeroCopyServer(maxPending: Int = 1 << 20) throws -> (any NetworkEngine, EchoServer, SocketAddress) {
            var configuration = testConfiguration()
            configuration.uringFeatures = [.zeroCopySends, .incrementalBuffers]
            configuration.maxPendingBytesPerConnection = maxPending
            let (engine, _, address) = try engineListening(.uring, configuration: configuration)
            return (engine, EchoServer(engine), address)
        }

        /// A peer whose receive buffer stays small (no autotuning), so that the engine's sends to it go
        /// short and wait in the kernel after a few kilobytes instead of megabytes.
        private func smallWindowPeer(_ address: SocketAddress, receiveBuffer: Int32 = 32 * 1024) throws -> BlockingSocket {
            let peer = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            var size = receiveBuffer
            setsockopt(peer.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            return peer
        }

        /// Whether the engine dropped the feature (a kernel without SEND_ZC): the tests then still check
        /// the echo, through plain sends.
        private func refused(_ engine: any NetworkEngine) -> Bool {
            engine.statistics.notes.contains { $0.contains("SEND_ZC") || $0.contains("zero-copy") }
        }

        /// Polls until every notification is in: no closed connection's buffer held, and a notification
        /// for every zero-copy send that completed.
        private func expectNotificationsSettle(_ engine: any NetworkEngine, _ server: EchoServer) throws {
            let settled = try server.run(seconds: 5) {
                let s = engine.statistics
                return s.zeroCopyRetained == 0 && s.zeroCopyNotifications >= s.zeroCopySends
            }
            let s = engine.statistics
            #expect(settled, "retained \(s.zeroCopyRetained), notifications \(s.zeroCopyNotifications) for \(s.zeroCopySends) sends")
        }

        @Test func probes() {
            #expect(FeatureProbe.zeroCopySends(requested: [], opcodeSupported: true) == (false, nil))
            #expect(FeatureProbe.zeroCopySends(requested: .zeroCopySends, opcodeSupported: true) == (true, nil))
            let missing = FeatureProbe.zeroCopySends(requested: .zeroCopySends, opcodeSupported: false)
            #expect(!missing.use && missing.note?.contains("IORING_OP_SEND_ZC") == true)
            #expect(FeatureProbe.zeroCopySends(requested: .zeroCopySends, opcodeSupported: nil).use == false)
            #expect(FeatureProbe.zeroCopyRefused(sendResult: -EOPNOTSUPP) != nil)
            #expect(FeatureProbe.zeroCopyRefused(sendResult: -ECONNRESET) == nil)
            #expect(FeatureProbe.zeroCopyRefused(sendResult: -EPIPE) == nil)
        }

        /// A pinned in-flight half is not swapped back for appends (they wait in the queued half), not
        /// freed or overwritten by `reset`, and is handed over whole by `takePinned`; after that the
        /// buffer works on fresh memory.
        @Test func pinnedHalfStaysPut() {
            var buffer = OutboundBuffer()
            defer { buffer.deallocate() }
            let first = payload(100_000, seed: 1), second = payload(3_000, seed: 2)
            first.withUnsafeBytes { buffer.append($0) }
            let chunk = buffer.nextChunk()!
            #expect(chunk.count == first.count)
            buffer.pin()
            buffer.consume(chunk.count)
            second.withUnsafeBytes { buffer.append($0) }
            #expect(buffer.count == second.count)
            #expect(buffer.nextChunk() == nil, "swapped while the kernel may read the in-flight half")
            buffer.reset()  // as a failed send does: must keep the pinned half
            #expect(Array(UnsafeRawBufferPointer(start: chunk.baseAddress, count: chunk.count)) == first)
            let taken = buffer.takePinned()
            #expect(taken?.memory == UnsafeMutableRawPointer(mutating: chunk.baseAddress))
            #expect(taken?.notifications == 1)
            #expect(buffer.pins == 0)
            second.withUnsafeBytes { buffer.append($0) }
            let next = buffer.nextChunk()!
            #expect(Array(next) == second)
            #expect(next.baseAddress != chunk.baseAddress)
            if let taken { free(taken.memory) }

            // Unpinned, the swap goes on as before.
            var plain = OutboundBuffer()
            defer { plain.deallocate() }
            first.withUnsafeBytes { plain.append($0) }
            let c = plain.nextChunk()!
            plain.pin()
            plain.consume(c.count)
            second.withUnsafeBytes { plain.append($0) }
            #expect(plain.nextChunk() == nil)
            plain.unpin()
            #expect(plain.nextChunk().map { Array($0) } == second)
        }

        /// 40 connections, eight rounds of a 16 KiB message each (all connections' messages queued
        /// before the engine looks): every byte comes back in order, the sends went zero-copy, and
        /// every notification arrives.
        @Test func sixteenKiBMessagesEchoExactly() throws {
            let (engine, server, address) = try zeroCopyServer()
            let connections = 40, rounds = 8, size = 16_384
            var peers: [BlockingSocket] = []
            for _ in 0..<connections { peers.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
            #expect(try server.run(seconds: 5) { server.accepted.count == connections })
            let (sent, back) = try server.echoRounds(peers, rounds: rounds, seconds: 10) { _, _ in size }
            for c in 0..<connections { #expect(firstDifference(back[c], sent[c]) == nil, "connection \(c)") }
            let stats = engine.statistics
            if !refused(engine) {
                #expect(stats.features.contains { $0.hasPrefix("send_zc") })
                #expect(stats.zeroCopySends > 0, "no send went zero-copy")
            }
            for peer in peers { peer.close() }
            #expect(try server.run(seconds: 5) { server.closed.count == connections })
            try expectNotificationsSettle(engine, server)
            #expect(engine.statistics.bytesSent == connections * rounds * size)
            #expect(server.eventsAfterEnd == [] && server.sendFailures.isEmpty)
        }

        /// A peer that writes 16 MiB without reading fills its receive buffer: the engine's zero-copy
        /// sends go out short and wait in the kernel, the echo queues behind a pinned half, reading
        /// pauses. Once the peer reads, every byte comes back in order.
        @Test func shortSendsLoseNothing() throws {
            let (engine, server, address) = try zeroCopyServer(maxPending: 256 * 1024)
            let peer = try smallWindowPeer(address)
            // More than the engine's socket send buffer (4 MiB at most), the bound and both peers'
            // kernel buffers take: the engine must stop reading with bytes still unsent.
            let data = payload(16 << 20, seed: 7)
            var sent = 0
            var back: [UInt8] = []
            back.reserveCapacity(data.count)
            func write() { sent += (try? peer.trySend(data[sent..<min(data.count, sent + 65_536)])) ?? 0 }
            // Write only, until the engine stopped reading for 200 ms.
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
            #expect(stalled)
            #expect(sent < data.count, "all of it went into kernel buffers; use more data")
            let complete = try server.run(seconds: 15) {
                write()
                while case .data(let d) = peer.receive(wait: false) { back += d }
                return back.count >= data.count
            }
            #expect(complete, "echoed \(back.count) of \(data.count) B (sent \(sent))")
            #expect(firstDifference(back, data) == nil)
            #expect(server.sendFailures.isEmpty && server.readEnds.isEmpty)
            if !refused(engine) { #expect(engine.statistics.zeroCopySends > 0) }
            peer.close()
            #expect(try server.run(seconds: 5) { server.closed.count == 1 })
            try expectNotificationsSettle(engine, server)
        }

        /// A connection closed (orderly) while the kernel still holds its zero-copy bytes: the peer's
        /// window is a few KiB, so most of a 64 KiB send sits untransmitted in the socket's queue after
        /// the send completed and after the close. The half stays held (`zeroCopyRetained`) while the
        /// slot's next connection echoes 200 KB through the same slot's send buffer; then the first peer
        /// reads, and gets exactly the bytes it was sent, and the held half is freed with the
        /// notification.
        @Test func bytesOutliveTheirConnectionUntilTheNotification() throws {
            let (engine, server, address) = try zeroCopyServer()
            guard !refused(engine) else { return }
            let peer = try smallWindowPeer(address, receiveBuffer: 4096)
            #expect(try server.run(seconds: 5) { server.accepted.count == 1 })
            let first = try #require(server.accepted.first)
            let data = payload(65_536, seed: 77)
            data.withUnsafeBytes { engine.send(first, $0) }
            #expect(try server.run(seconds: 5) { engine.pendingBytes(first) == 0 }, "the send never completed")
            engine.close(first, mode: .orderly)
            #expect(try server.run(seconds: 5) { server.closed.count == 1 })
            let held = engine.statistics.zeroCopyRetained
            #expect(held == 1, "the closed connection's bytes were not held for their notification")

            // The slot's next occupant sends through the slot's send buffer meanwhile.
            let second = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 5) { server.accepted.count == 2 })
            #expect(server.accepted[1].slot == first.slot, "the slot was not reused; the test shows less")
            let message = payload(200_000, seed: 78)
            var sent = 0
            var echoed: [UInt8] = []
            let done = try server.run(seconds: 10) {
                sent += (try? second.trySend(message[sent...])) ?? 0
                while case .data(let d) = second.receive(wait: false) { echoed += d }
                return echoed.count >= message.count
            }
            #expect(done)
            #expect(firstDifference(echoed, message) == nil)

            // Now the first peer reads: the bytes the kernel sent from the held half are the original ones.
            let (back, end) = peer.receiveUntilEnd()
            #expect(end == .endOfStream)
            #expect(firstDifference(back, data) == nil, "\(back.count) B back")
            try expectNotificationsSettle(engine, server)
            second.close()
            peer.close()
            #expect(try server.run(seconds: 5) { server.closed.count == 2 })
        }

        /// 12 peers write without reading until the engine's zero-copy sends are stuck in full socket
        /// buffers; then half reset their connection (RST) and the server aborts the other half. No
        /// crash, every connection closes, every pinned buffer is let go once its notification comes,
        /// and the slots' next connections echo exactly.
        @Test func connectionsEndedMidSendLeakNothing() throws {
            let (engine, server, address) = try zeroCopyServer(maxPending: 256 * 1024)
            let connections = 12
            var peers: [BlockingSocket] = []
            for _ in 0..<connections { peers.append(try smallWindowPeer(address)) }
            #expect(try server.run(seconds: 5) { server.accepted.count == connections })
            let data = payload(8 << 20, seed: 11)
            var sent = [Int](repeating: 0, count: connections)
            var lastReceived = -1
            var stillSince = monotonicNanoseconds()
            let stalled = try server.run(seconds: 10) {
                for (c, peer) in peers.enumerated() { sent[c] += (try? peer.trySend(data[sent[c]..<min(data.count, sent[c] + 65_536)])) ?? 0 }
                if server.bytesReceived != lastReceived {
                    lastReceived = server.bytesReceived
                    stillSince = monotonicNanoseconds()
                }
                return monotonicNanoseconds() - stillSince > 300_000_000
            }
            #expect(stalled)
            let pending = server.accepted.map { engine.pendingBytes($0) }.reduce(0, +)
            #expect(pending > 0, "nothing left unsent: the peers' buffers never filled")
            for c in 0..<connections where c % 2 == 0 { peers[c].reset() }
            for (c, id) in server.accepted.enumerated() where c % 2 == 1 { engine.close(id, mode: .abortive) }
            // A reset peer's connection was not being read (backpressure), so its end shows as the
            // send's failure, not a read end: the application closes it then.
            var closing = Set<ConnectionID>()
            var mostRetained = 0
            let closed = try server.run(seconds: 10) {
                mostRetained = max(mostRetained, engine.statistics.zeroCopyRetained)
                for id in server.sendFailures.keys where !closing.contains(id) {
                    closing.insert(id)
                    engine.close(id, mode: .abortive)
                }
                return server.closed.count == connections
            }
            let open = server.accepted.filter { !server.closed.contains($0) }.map { id in
                "\(id): pending \(engine.pendingBytes(id)) readEnd \(String(describing: server.readEnds[id])) sendFailure \(String(describing: server.sendFailures[id]))"
            }
            #expect(closed, "closed \(server.closed.count) of \(connections); still open: \(open)")
            #expect(engine.openConnections == 0)
            // Whether a notification came after its connection's close depends on timing: shown, not checked.
            print("zero-copy: at most \(mostRetained) closed connections' buffers held for a notification")
            try expectNotificationsSettle(engine, server)
            for peer in peers { peer.close() }

            // The slots' next occupants: each echo exact (a reused send buffer is not the kernel's).
            var next: [BlockingSocket] = []
            for _ in 0..<connections { next.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
            #expect(try server.run(seconds: 5) { server.accepted.count == 2 * connections })
            var sentNext = [[UInt8]](repeating: [], count: connections)
            var backNext = [[UInt8]](repeating: [], count: connections)
            for (c, peer) in next.enumerated() {
                sentNext[c] = payload(50_000 + c * 1_000, seed: UInt64(500 + c))
                try peer.sendAll(sentNext[c])
            }
            let echoed = try server.run(seconds: 10) {
                for (c, peer) in next.enumerated() where backNext[c].count < sentNext[c].count {
                    while case .data(let d) = peer.receive(wait: false) { backNext[c] += d }
                }
                return (0..<connections).allSatisfy { backNext[$0].count >= sentNext[$0].count }
            }
            #expect(echoed)
            for c in 0..<connections { #expect(firstDifference(backNext[c], sentNext[c]) == nil, "connection \(c)") }
            for peer in next { peer.close() }
            #expect(try server.run(seconds: 5) { server.closed.count == 2 * connections })
            try expectNotificationsSettle(engine, server)
        }
    }
}
