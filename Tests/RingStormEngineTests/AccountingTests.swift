import Glibc
import RingStormEngine
import Testing

extension EngineTests {
    @Suite("Syscall accounting, timers and identities")
    struct Accounting {
        /// 1000 small messages over 50 connections, the engine as both client and server of itself,
        /// each connection sending its next message when the last one's echo is back. Counters add up;
        /// io_uring batches: far fewer io_uring_enter calls than messages.
        @Test(arguments: Backend.allCases)
        func thousandMessagesOverFiftyConnections(_ backend: Backend) throws {
            let (engine, _, address) = try engineListening(backend)
            let server = EchoServer(engine)
            let connections = 50, messagesEach = 20, size = 32
            let messages = connections * messagesEach
            func message(_ c: Int, _ m: Int) -> [UInt8] { payload(size, seed: UInt64(c * 1_000 + m)) }

            var clients: [ConnectionID: (index: Int, next: Int, buffer: [UInt8])] = [:]
            for c in 0..<connections {
                let id = try engine.connect(to: address, from: nil, timeoutNanoseconds: 2_000_000_000)
                clients[id] = (c, 0, [])
            }
            let setup = engine.statistics
            var completed = 0
            var failures: [String] = []
            let done = try pollUntil(engine, seconds: 10, { event in
                guard var client = clients[event.connection] else { return server.handle(event) }
                switch event.kind {
                case .connected:
                    guard event.outcome == .success else { failures.append("connect: \(event.outcome)"); return }
                    message(client.index, 0).withUnsafeBytes { engine.send(event.connection, $0) }
                case .received:
                    client.buffer += Array(event.bytes)
                    while client.buffer.count >= size {
                        if Array(client.buffer.prefix(size)) != message(client.index, client.next) {
                            failures.append("connection \(client.index) message \(client.next) came back altered")
                        }
                        client.buffer.removeFirst(size)
                        client.next += 1
                        completed += 1
                        if client.next == messagesEach {
                            engine.close(event.connection, mode: .orderly)
                        } else {
                            message(client.index, client.next).withUnsafeBytes { engine.send(event.connection, $0) }
                        }
                    }
                    clients[event.connection] = client
                case .closed:
                    server.handle(event)
                default:
                    failures.append("client \(client.index): unexpected \(event.kind) \(event.outcome)")
                }
            }, until: { completed == messages && server.closed.count == 2 * connections })

            #expect(done, "\(completed) of \(messages) messages, \(engine.openConnections) connections open")
            #expect(failures == [])
            #expect(server.accepted.count == connections)
            #expect(engine.openConnections == 0)
            let stats = engine.statistics
            let run = stats.syscalls.counts.indices.map { stats.syscalls.counts[$0] - setup.syscalls.counts[$0] }
            let enters = run[Syscall.ioUringEnter.rawValue]
            #expect(stats.syscalls.total > 0)
            #expect(stats.bytesReceived == 2 * messages * size)
            #expect(stats.bytesSent == 2 * messages * size)
            #expect(stats.outcomes.count(.connect, .success) == connections)
            #expect(stats.outcomes.count(.accept, .success) == connections)
            #expect(stats.outcomes.count(.receive, .closedByPeer) == connections)
            #expect(stats.outcomes.total(.close) == 2 * connections)
            #expect(stats.operations >= 4 * messages)
            #expect(stats.syscallsPerOperation > 0)
            switch backend {
            case .uring:
                // One enter carries a whole wave of sends and brings back its completions.
                #expect(enters > 0)
                #expect(enters < messages / 2, "\(enters) io_uring_enter for \(messages) messages")
                // Per-connection I/O goes through the ring, never a syscall of its own.
                #expect(stats.syscalls[.send] == 0 && stats.syscalls[.recv] == 0 && stats.syscalls[.accept] == 0)
                #expect(stats.syscalls[.epollWait] == 0)
            case .epoll:
                // Every message is one send and at least one receive, each way.
                #expect(stats.syscalls[.send] >= 2 * messages)
                #expect(stats.syscalls[.recv] >= stats.outcomes.count(.receive, .success))
                #expect(stats.syscalls[.epollWait] > 0)
                #expect(stats.syscalls[.ioUringEnter] == 0)
            }
            print("[\(backend)] \(messages) messages: \(run.reduce(0, +)) syscalls (\(stats.syscalls.byName)), io_uring_enter in the run: \(enters)")
        }

        /// Timers fire in deadline order, not before their deadline, whatever order they were set in.
        @Test(arguments: Backend.allCases)
        func timersFireInDeadlineOrder(_ backend: Backend) throws {
            let engine = try makeEngine(backend, configuration: testConfiguration())
            let start = monotonicNanoseconds()
            let delays: [UInt64: Int64] = [3: 120_000_000, 1: 20_000_000, 2: 60_000_000]
            for token in [3, 1, 2] as [UInt64] { engine.schedule(afterNanoseconds: delays[token]!, token: token) }
            var fired: [(token: UInt64, at: Int64)] = []
            let done = try pollUntil(engine, seconds: 2, pollNanoseconds: 500_000_000, { event in
                if event.kind == .timer { fired.append((event.token, monotonicNanoseconds() - start)) }
            }, until: { fired.count == 3 })
            #expect(done)
            #expect(fired.map(\.token) == [1, 2, 3])
            for (token, at) in fired {
                #expect(at >= delays[token]!, "timer \(token) fired after \(at) ns, before its \(delays[token]!) ns")
                #expect(at < delays[token]! + 300_000_000, "timer \(token) fired late: \(at) ns")
            }
        }

        /// An idle poll waits for its timeout, then returns no events. A wait may end early when the
        /// thread is interrupted (EINTR: a ring torn down on this thread queues task work that does so),
        /// so of three polls one must wait the full 50 ms; none may overrun nor report anything.
        @Test(arguments: Backend.allCases)
        func idlePollWaitsForItsTimeout(_ backend: Backend) throws {
            let engine = try makeEngine(backend, configuration: testConfiguration())
            _ = try engine.poll(timeoutNanoseconds: 0) { _ in }
            var waits: [Int64] = []
            for _ in 0..<3 {
                let start = monotonicNanoseconds()
                let handled = try engine.poll(timeoutNanoseconds: 50_000_000) { event in Issue.record("unexpected \(event.kind)") }
                waits.append(monotonicNanoseconds() - start)
                #expect(handled == 0)
                if waits.last! >= 45_000_000 { break }
            }
            #expect(waits.contains { $0 >= 45_000_000 }, "idle 50 ms polls took \(waits) ns")
            #expect(waits.allSatisfy { $0 < 500_000_000 }, "idle 50 ms polls took \(waits) ns")
        }

        /// A slot is reused with a new generation; calls naming the old occupant do nothing to the new.
        @Test(arguments: Backend.allCases)
        func staleIdentitiesAreIgnored(_ backend: Backend) throws {
            let (engine, _, address) = try engineListening(backend)
            let server = EchoServer(engine)
            let first = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 2) { server.accepted.count == 1 })
            let old = server.accepted[0]
            engine.close(old, mode: .orderly)
            #expect(try server.run(seconds: 2) { server.closed.contains(old) })
            #expect(first.receive() == .endOfStream)

            let second = try BlockingSocket.connect(to: address, timeoutSeconds: 2)
            #expect(try server.run(seconds: 2) { server.accepted.count == 2 })
            let new = server.accepted[1]
            #expect(new != old)
            #expect(new.slot != old.slot || new.generation != old.generation)
            // Queued for the old identity: must not reach the new occupant, nor close it.
            payload(500, seed: 41).withUnsafeBytes { engine.send(old, $0) }
            engine.close(old, mode: .abortive)
            #expect(engine.pendingBytes(old) == 0)
            _ = try pollFor(engine, seconds: 0.1, server.handle)
            #expect(engine.openConnections == 1)
            #expect(second.receive(wait: false) == .wouldBlock)
            #expect(server.closed == [old])
            // The new connection still works.
            #expect(try server.roundTrip(second, payload(10, seed: 42)))
        }
    }
}
