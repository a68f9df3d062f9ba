import Foundation
import Glibc
import RingStormEngine
import Testing

extension EngineTests {
    /// The connection states both drivers share (`Engine/Connection.swift`), seen through the interface.
    @Suite("Connection state")
    struct ConnectionState {
        /// A failed send ends the send direction on both backends: what was queued is dropped, later
        /// sends are ignored (no second `.sendFailed`), and an orderly close does not wait to drain.
        @Test(arguments: Backend.allCases)
        func aFailedSendDropsTheQueueAndLaterSends(_ backend: Backend) throws {
            let c = try OneConnection(backend, closeOnReadEnd: false)
            #expect(try c.roundTrip(payload(100, seed: 21)))
            c.peer.reset()
            #expect(try c.readEnd() == .resetByPeer)
            let bytes = payload(64 << 10, seed: 22)
            bytes.withUnsafeBytes { c.engine.send(c.connection, $0) }
            #expect(try c.server.run(seconds: 2) { c.server.sendFailures[c.connection] != nil })
            #expect(c.engine.pendingBytes(c.connection) == 0)
            let failedSends = c.engine.statistics.outcomes.total(.send) - c.engine.statistics.outcomes.count(.send, .success)
            bytes.withUnsafeBytes { c.engine.send(c.connection, $0) }
            #expect(c.engine.pendingBytes(c.connection) == 0)
            c.engine.close(c.connection, mode: .orderly)
            #expect(try c.closed())
            let after = c.engine.statistics.outcomes
            #expect(after.total(.send) - after.count(.send, .success) == failedSends, "a send after the failure was tried")
            #expect(c.server.kinds[c.connection]?.filter { $0 == .sendFailed }.count == 1)
            #expect(c.engine.openConnections == 0)
        }

        /// An orderly close with bytes queued drains them first; sends while draining are refused.
        @Test(arguments: Backend.allCases)
        func drainingTakesNoNewSends(_ backend: Backend) throws {
            let c = try OneConnection(backend, closeOnReadEnd: false)
            c.server.echo = false
            let first = payload(4 << 20, seed: 23)
            first.withUnsafeBytes { c.engine.send(c.connection, $0) }
            c.engine.close(c.connection, mode: .orderly)
            payload(1000, seed: 24).withUnsafeBytes { c.engine.send(c.connection, $0) }
            var back: [UInt8] = []
            var end = Received.data([])
            let done = try c.server.run(seconds: 5) {
                while true {
                    switch c.peer.receive(wait: false) {
                    case .data(let d): back += d; continue
                    case .wouldBlock: return false
                    case let other: end = other; return true
                    }
                }
            }
            #expect(done)
            #expect(end == .endOfStream)
            #expect(back == first, "\(back.count) of \(first.count) B came, in order, and nothing after")
            #expect(try c.closed())
        }
    }
}

extension EngineTests {
    /// Set-up failures say why as data; the engine's own words name no command-line option.
    @Suite("Engine errors")
    struct Errors {
        @Test(arguments: Backend.allCases)
        func aTakenPortIsATypedBindFailure(_ backend: Backend) throws {
            let (engine, _, address) = try engineListening(backend)
            do {
                _ = try engine.listen(on: address, backlog: 16, reusePort: false)
                Issue.record("listening twice on \(address) succeeded")
            } catch {
                #expect(error.reason == .bindFailed(address))
                #expect(error.errno == .addressInUse)
                #expect(error.hint.contains("pick another port"))
                #expect(!error.description.contains("--"), "\(error)")
            }
        }

        @Test func reasonsWordedOnceWithoutOptions() {
            let reasons: [EngineError.Reason] = [
                .ioUringMissing, .ioUringDisabled(by: .sysctl(2)), .ioUringDisabled(by: .sysctl(1)),
                .ioUringDisabled(by: .seccompFilter), .ioUringDisabled(by: .unknown), .ioUringUnavailable,
                .kernelLacks(feature: "IORING_FEAT_EXT_ARG", since: "5.11"), .invalidConfiguration("count must be a power of two"),
            ]
            for reason in reasons {
                let error = EngineError("io_uring_setup", .noSystem, reason: reason)
                #expect(error.hint == reason.advice(.noSystem))
                #expect(error.description == "io_uring_setup: \(Errno.noSystem); \(error.hint)")
                #expect(!error.hint.contains("--"))
                #expect(reason.needsAnotherBackend == error.hint.contains(": use the epoll backend"))
            }
        }

        /// A refused io_uring_setup names what refused it, from the errno and what /proc says.
        @Test func aRefusedSetupNamesItsCause() {
            let eacces = Errno(rawValue: EACCES)
            let cases: [(Errno, Int?, Int?, EngineError.Reason)] = [
                (.notPermitted, 2, 0, .ioUringDisabled(by: .sysctl(2))),
                (.notPermitted, 1, 2, .ioUringDisabled(by: .sysctl(1))),   // the sysctl first: it is the kernel's own check
                (eacces, 1, 0, .ioUringDisabled(by: .sysctl(1))),
                (.notPermitted, 0, 2, .ioUringDisabled(by: .seccompFilter)),  // a container's default profile
                (.notPermitted, nil, 2, .ioUringDisabled(by: .seccompFilter)), // a kernel older than the sysctl
                (.noSystem, 0, 2, .ioUringDisabled(by: .seccompFilter)),      // a filter answering ENOSYS
                (.noSystem, 1, 0, .ioUringMissing),                           // 1 answers EPERM, never ENOSYS
                (.noSystem, nil, 0, .ioUringMissing),
                (.notPermitted, 0, 0, .ioUringDisabled(by: .unknown)),
                (.invalidArgument, 2, 2, .ioUringUnavailable),
            ]
            for (errno, sysctl, seccomp, expected) in cases {
                #expect(EngineError.Reason.ioUringSetupFailed(errno, disabledSysctl: sysctl, seccompMode: seccomp) == expected,
                        "\(errno), io_uring_disabled \(String(describing: sysctl)), Seccomp \(String(describing: seccomp))")
            }
            let seccomp = EngineError("io_uring_setup", .notPermitted, reason: .ioUringDisabled(by: .seccompFilter))
            #expect(seccomp.hint.contains("seccomp filter"))
            #expect(seccomp.hint.contains("allows io_uring_setup, io_uring_enter and io_uring_register"))
            let sysctl = EngineError("io_uring_setup", .notPermitted, reason: .ioUringDisabled(by: .sysctl(2)))
            #expect(sysctl.hint.contains("kernel.io_uring_disabled=2"))
            #expect(sysctl.hint.contains("sysctl -w kernel.io_uring_disabled=0"))
        }

        /// On this machine the reading from /proc agrees with what the kernel says.
        @Test func theLiveReadingMatchesThisProcess() throws {
            let disabled = (try? String(contentsOfFile: "/proc/sys/kernel/io_uring_disabled", encoding: .utf8))
                .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            let reason = EngineError.Reason.ioUringSetupFailed(.notPermitted)
            if let disabled, disabled != 0 {
                #expect(reason == .ioUringDisabled(by: .sysctl(disabled)))
            } else {
                // Seccomp: 0 outside a container here; either way the reading is the process's own.
                let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
                let filtered = status.contains("Seccomp:\t2")
                #expect(reason == (filtered ? .ioUringDisabled(by: .seccompFilter) : .ioUringDisabled(by: .unknown)))
            }
        }
    }
}
