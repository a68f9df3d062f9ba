import CURing
import Glibc
import RingStormEngine
import Testing

extension EngineTests {
    @Suite("io_uring without an SQ index array (IORING_SETUP_NO_SQARRAY)")
    struct UringNoSQArray {
        /// The set-up decision per shim outcome: used with one setup; refused (EINVAL) or without
        /// SINGLE_MMAP, dropped with a note after a second setup; failed, nothing to note (the caller
        /// reports the error or retries with other flags).
        @Test func probe() {
            let used = FeatureProbe.noSQArray(setupOutcome: Int32(CURING_NO_SQARRAY_USED.rawValue))
            #expect(used.use && used.setups == 1 && used.note == nil)
            let refused = FeatureProbe.noSQArray(setupOutcome: Int32(CURING_NO_SQARRAY_REFUSED.rawValue))
            #expect(!refused.use && refused.setups == 2)
            #expect(refused.note?.contains("IORING_SETUP_NO_SQARRAY") == true)
            let noSingleMmap = FeatureProbe.noSQArray(setupOutcome: Int32(CURING_NO_SQARRAY_NO_SINGLE_MMAP.rawValue))
            #expect(!noSingleMmap.use && noSingleMmap.note?.contains("SINGLE_MMAP") == true)
            let failed = FeatureProbe.noSQArray(setupOutcome: Int32(CURING_NO_SQARRAY_FAILED.rawValue))
            #expect(!failed.use && failed.note == nil)
        }

        /// A ring set up by the shim takes 500 NOPs in ten batches of 50 (the SQ wraps its 64 slots
        /// several times): every one completes once, with its own user data and result 0. Had liburing's
        /// identity array been written at offset 0, the ring's head and tail would be garbage.
        @Test func nopsCompleteOnARingWithoutTheArray() throws {
            var ring = io_uring()
            var params = io_uring_params()
            params.flags = curing_setup_single_issuer | curing_setup_defer_taskrun
            var outcome: Int32 = -1
            let result = curing_queue_init_no_sqarray(64, &ring, &params, &outcome)
            try #require(result == 0, "set-up failed: \(Errno.fromNegated(result))")
            defer { io_uring_queue_exit(&ring) }
            if outcome == Int32(CURING_NO_SQARRAY_USED.rawValue) {
                #expect(params.flags & curing_setup_no_sqarray != 0)
                #expect(params.sq_off.array == 0)
                #expect(ring.features & curing_feat_single_mmap != 0)
            } else {
                // A kernel before 6.6: the fallback ring must work the same.
                #expect(outcome == Int32(CURING_NO_SQARRAY_REFUSED.rawValue))
            }
            #expect(ring.sq.ring_entries == 64)
            var seen = Set<UInt64>()
            var bad = 0
            for round in 0..<10 {
                for k in 0..<50 {
                    let sqe = try #require(io_uring_get_sqe(&ring))
                    io_uring_prep_nop(sqe)
                    io_uring_sqe_set_data64(sqe, UInt64(round * 1_000 + k + 1))
                }
                #expect(io_uring_submit_and_wait(&ring, 50) == 50)
                var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
                while io_uring_peek_cqe(&ring, &cqe) == 0, let c = cqe {
                    if c.pointee.res != 0 { bad += 1 }
                    let data = c.pointee.user_data
                    if data < UInt64(round * 1_000 + 1) || data > UInt64(round * 1_000 + 50) || !seen.insert(data).inserted { bad += 1 }
                    io_uring_cqe_seen(&ring, c)
                }
            }
            #expect(seen.count == 500)
            #expect(bad == 0)
        }

        /// The engine with `no-sqarray`: the setup flags say NO_SQARRAY (or a note says why not), and an
        /// echo server on loopback answers every message of 30 connections, content checked, across
        /// enough submissions to wrap a small SQ many times.
        @Test func echoServerAnswersEveryMessage() throws {
            var configuration = testConfiguration()
            configuration.submissionQueueEntries = 64
            configuration.uringFeatures = [.noSQArray, .incrementalBuffers]
            let (engine, _, address) = try engineListening(.uring, configuration: configuration)
            let server = EchoServer(engine)
            let stats = engine.statistics
            let setup = stats.features.first { $0.hasPrefix("setup:") } ?? ""
            if stats.notes.contains(where: { $0.contains("NO_SQARRAY") }) {
                #expect(!setup.contains("NO_SQARRAY"))
            } else {
                #expect(setup.contains("NO_SQARRAY"), "\(stats.features)")
            }
            let connections = 30, rounds = 20
            var peers: [BlockingSocket] = []
            for _ in 0..<connections { peers.append(try BlockingSocket.connect(to: address, timeoutSeconds: 2)) }
            #expect(try server.run(seconds: 5) { server.accepted.count == connections })
            let (sent, back) = try server.echoRounds(peers, rounds: rounds, seconds: 5) { round, c in 1 + (c * 131 + round * 977) % 5_000 }
            for c in 0..<connections { #expect(firstDifference(back[c], sent[c]) == nil, "connection \(c)") }
            for peer in peers { peer.close() }
            #expect(try server.run(seconds: 5) { server.closed.count == connections })
            #expect(engine.openConnections == 0)
            #expect(server.eventsAfterEnd == [])
        }
    }
}
