import Glibc
import RingStormEngine
import Testing

extension EngineTests {
    @Suite("Churn with the receive buffers run dry")
    struct StarvedChurn {
        /// Issue 12's cause: with DEFER_TASKRUN the kernel runs queued completion work (here 200
        /// receives' wake-ups; fewer than the 256 provided buffers a ring starts with, so none runs dry) only inside our enter, and only about as many items as the enter asks
        /// completions for. Asking for 1 (or the 64 of a batch wait) ran 20–64 of them per poll, so a
        /// loop starved of CPU fell behind churn for good and bytes waited seconds to be read. One poll
        /// must now hand over everything that was waiting (up to half the completion queue).
        @Test
        func onePollDeliversEveryWaitingReceive() throws {
            let (engine, _, address) = try engineListening(.uring)
            let server = EchoServer(engine)
            server.echo = false
            let connections = 200
            var peers: [BlockingSocket] = []
            for _ in 0..<connections { peers.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
            #expect(try server.run(seconds: 10) { server.accepted.count == connections })
            // The receives armed at accept go to the kernel with the next polls.
            try pollFor(engine, seconds: 0.05, server.handle)
            let before = server.bytesReceived
            for peer in peers { try peer.sendAll([7]) }
            usleep(50_000)
            var receivedInOnePoll = 0
            try engine.poll(timeoutNanoseconds: 100_000_000) { event in
                if event.kind == .received { receivedInOnePoll += 1 }
                server.handle(event)
            }
            #expect(receivedInOnePoll == connections, "one poll delivered \(receivedInOnePoll) of \(connections) waiting receives")
            #expect(try server.run(seconds: 5) { server.bytesReceived - before == connections })
            for peer in peers { peer.close() }
            #expect(try server.run(seconds: 5) { server.closed.count == connections })
        }

        /// The churn soak's shape in small (issue 12: REGISTERs lost when both sides ran io_uring): a
        /// client engine (io_uring) keeps 400 connections reconnecting, each sending one 16-byte message
        /// at once and waiting for its answer; the server engine answers and closes. The server has four
        /// 512-byte receive buffers, so io_uring's receives run dry (ENOBUFS) while accepts keep arming
        /// new ones. Every message must be read and answered: none may wait for a receive that is never
        /// armed again.
        @Test(arguments: Backend.allCases)
        func everyMessageIsAnswered(_ backend: Backend) throws {
            var serverConfiguration = testConfiguration()
            serverConfiguration.receiveBufferCount = 4
            serverConfiguration.receiveBufferSize = 512
            let (server, _, address) = try engineListening(backend, configuration: serverConfiguration)
            let client = try makeEngine(.uring, configuration: testConfiguration())
            let connections = 400, rounds = 3, size = 16
            let total = connections * rounds

            var serverBytes: [ConnectionID: Int] = [:]
            var clientOf: [ConnectionID: Int] = [:]
            var started = [Int](repeating: 0, count: connections)
            var answered = 0, failures: [String] = []
            func start(_ c: Int) throws {
                started[c] += 1
                clientOf[try client.connect(to: address, from: nil, timeoutNanoseconds: 10_000_000_000)] = c
            }
            for c in 0..<connections { try start(c) }

            let handleServer: (Event) -> Void = { event in
                let id = event.connection
                switch event.kind {
                case .accepted: serverBytes[id] = 0
                case .received:
                    serverBytes[id, default: 0] += event.bytes.count
                    if serverBytes[id] == size {
                        event.bytes.withMemoryRebound(to: UInt8.self) { server.send(id, UnsafeRawBufferPointer($0)) }
                        server.close(id, mode: .orderly)
                    }
                case .readEnded, .sendFailed: server.close(id, mode: .abortive)
                case .closed: serverBytes[id] = nil
                default: break
                }
            }
            var answer: [ConnectionID: Int] = [:]
            let handleClient: (Event) -> Void = { event in
                let id = event.connection
                guard let c = clientOf[id] else { return }
                switch event.kind {
                case .connected:
                    guard event.outcome == .success else { failures.append("connect \(c): \(event.outcome)"); return }
                    let message = payload(size, seed: UInt64(c))
                    message.withUnsafeBytes { client.send(id, $0) }
                case .received:
                    answer[id, default: 0] += event.bytes.count
                    if answer[id] == size { answered += 1 }
                case .readEnded:
                    if answer[id, default: 0] < size { failures.append("client \(c): \(event.outcome) before its answer") }
                    client.close(id, mode: .orderly)
                case .sendFailed:
                    failures.append("client \(c): send \(event.outcome)")
                    client.close(id, mode: .abortive)
                case .closed:
                    clientOf[id] = nil
                    answer[id] = nil
                    if started[c] < rounds { try? start(c) }
                default: break
                }
            }
            let deadline = monotonicNanoseconds() + Int64(20 * sanitizerScale * 1e9)
            while answered < total && failures.isEmpty && monotonicNanoseconds() < deadline {
                try client.poll(timeoutNanoseconds: 0, handleClient)
                try server.poll(timeoutNanoseconds: 1_000_000, handleServer)
            }
            #expect(failures.isEmpty, "\(failures.prefix(5))")
            #expect(answered == total, "\(answered) of \(total) messages answered; \(serverBytes.values.filter { $0 < size }.count) server connections still waiting for theirs")
            if backend == .uring { #expect(server.statistics.bufferExhaustions > 0) }
        }
    }
}
