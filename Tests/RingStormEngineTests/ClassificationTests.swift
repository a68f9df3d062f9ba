import Glibc
import RingStormEngine
import Testing

/// Pure value tests: errno classification, names, counters and address parsing. No sockets, no
/// engine, so they run beside the engine suite.
@Suite("Classification")
struct ClassificationTests {
    static let named: [(Int32, Outcome)] = [
        (ECONNRESET, .resetByPeer),
        (EPIPE, .brokenPipe),
        (ECONNREFUSED, .refused),
        (ETIMEDOUT, .timedOut),
        (ETIME, .timedOut),
        (EADDRNOTAVAIL, .addressNotAvailable),
        (EMFILE, .tooManyOpenFiles),
        (ENFILE, .fileTableFull),
        (ENOBUFS, .noBuffers),
        (ECANCELED, .cancelled),
    ]

    @Test func everyNamedErrnoHasItsOutcome() {
        for (code, outcome) in Self.named {
            #expect(Outcome(Errno(rawValue: code)) == outcome, "\(Errno(rawValue: code).name)")
        }
        // Each named case but timedOut (ETIME folds into it) gives back the errno it came from.
        for (code, outcome) in Self.named where code != ETIME {
            #expect(outcome.errno == Errno(rawValue: code), "\(outcome)")
        }
        #expect(Outcome.success.errno == nil)
        #expect(Outcome.closedByPeer.errno == nil)
    }

    @Test func unnamedErrnosAreKeptByNumber() {
        for code in [EHOSTUNREACH, ENETUNREACH, EINVAL, ENOMEM, EACCES] {
            let outcome = Outcome(Errno(rawValue: code))
            #expect(outcome == .other(Errno(rawValue: code)))
            #expect(outcome.errno == Errno(rawValue: code))
            #expect(outcome.name == Errno(rawValue: code).name)
        }
        #expect(Outcome(Errno(rawValue: EHOSTUNREACH)).name == "EHOSTUNREACH")
        #expect(Outcome(Errno(rawValue: EHOSTUNREACH)) != Outcome(Errno(rawValue: ENETUNREACH)))
    }

    @Test func outcomeNames() {
        let names: [Outcome: String] = [
            .success: "ok", .closedByPeer: "closed", .resetByPeer: "reset", .brokenPipe: "broken_pipe",
            .refused: "refused", .timedOut: "timed_out", .addressNotAvailable: "addr_not_available",
            .tooManyOpenFiles: "EMFILE", .fileTableFull: "ENFILE", .noBuffers: "ENOBUFS", .cancelled: "cancelled",
            .drainTimeout: "drain_timeout",
        ]
        for (outcome, name) in names {
            #expect(outcome.name == name)
            #expect(outcome.description == name)
        }
    }

    @Test func onlyResourceExhaustionPausesAccepting() {
        let pausing: [Outcome] = [.tooManyOpenFiles, .fileTableFull, .noBuffers, .other(Errno(rawValue: ENOMEM))]
        let notPausing: [Outcome] = [.success, .closedByPeer, .resetByPeer, .brokenPipe, .refused, .timedOut,
                                     .addressNotAvailable, .cancelled, .other(Errno(rawValue: ECONNABORTED)),
                                     .other(Errno(rawValue: EPERM))]
        for outcome in pausing { #expect(outcome.pausesAccepting, "\(outcome)") }
        for outcome in notPausing { #expect(!outcome.pausesAccepting, "\(outcome)") }
    }

    @Test func errnoNames() {
        #expect(Errno(rawValue: EMFILE).name == "EMFILE")
        #expect(Errno(rawValue: ECONNRESET).name == "ECONNRESET")
        #expect(Errno(rawValue: EAGAIN).name == "EAGAIN")
        #expect(Errno(rawValue: 9999).name == "E9999")
        #expect(Errno(rawValue: EMFILE).message == "Too many open files")
        #expect(Errno(rawValue: ECONNREFUSED).description == "ECONNREFUSED (Connection refused)")
        #expect(Errno.fromNegated(-ECONNRESET) == .connectionReset)
    }

    @Test func outcomeCountsAddUp() {
        var a = OutcomeCounts()
        a.record(.receive, .success)
        a.record(.receive, .success)
        a.record(.receive, .resetByPeer)
        a.record(.accept, .other(Errno(rawValue: EHOSTUNREACH)))
        var b = OutcomeCounts()
        b.record(.receive, .success)
        b.record(.accept, .other(Errno(rawValue: EHOSTUNREACH)))
        b.record(.accept, .other(Errno(rawValue: EPERM)))
        let sum = a + b
        #expect(sum.count(.receive, .success) == 3)
        #expect(sum.count(.receive, .resetByPeer) == 1)
        #expect(sum.total(.receive) == 4)
        #expect(sum.count(.accept, .other(Errno(rawValue: EHOSTUNREACH))) == 2)
        #expect(sum.count(.accept, .other(Errno(rawValue: EPERM))) == 1)
        #expect(sum.total(.accept) == 3)
        #expect(sum.total(.send) == 0)
        #expect(sum.byName == ["recv": ["ok": 3, "reset": 1], "accept": ["EHOSTUNREACH": 2, "EPERM": 1]])
    }

    @Test func statisticsAddUp() {
        var a = EngineStatistics(backend: .uring)
        a.syscalls.record(.ioUringEnter, 3)
        a.bytesReceived = 10
        a.bufferExhaustions = 1
        a.notes = ["x"]
        var b = EngineStatistics(backend: .uring)
        b.syscalls.record(.ioUringEnter)
        b.syscalls.record(.close, 2)
        b.bytesReceived = 5
        b.outcomes.record(.send, .success)
        b.notes = ["x", "y"]
        let sum = a + b
        #expect(sum.syscalls[.ioUringEnter] == 4)
        #expect(sum.syscalls.total == 6)
        #expect(sum.syscalls.byName == ["io_uring_enter": 4, "close": 2])
        #expect(sum.bytesReceived == 15)
        #expect(sum.bufferExhaustions == 1)
        #expect(sum.operations == 1)
        #expect(sum.syscallsPerOperation == 6)
        #expect(sum.notes == ["x", "y"])
        #expect(EngineStatistics(backend: .epoll).syscallsPerOperation == 0)
    }

    // MARK: SocketAddress

    @Test func parsesIPv4() throws {
        let a = try SocketAddress(parsing: "127.0.0.1:80")
        #expect(!a.isIPv6)
        #expect(a.family == AF_INET)
        #expect(a.host == "127.0.0.1")
        #expect(a.port == 80)
        #expect(a.description == "127.0.0.1:80")
        #expect(a.ipv4Value == 0x7F00_0001)
        #expect(SocketAddress(ipv4Value: 0x7F00_0001, port: 80) == a)
    }

    @Test func parsesIPv6() throws {
        let a = try SocketAddress(parsing: "[::1]:8080")
        #expect(a.isIPv6)
        #expect(a.family == AF_INET6)
        #expect(a.host == "::1")
        #expect(a.port == 8080)
        #expect(a.description == "[::1]:8080")
        #expect(a.ipv4Value == nil)
        // A bare IPv6 host (several colons) has no port.
        let bare = try SocketAddress(parsing: "::1")
        #expect(bare.isIPv6 && bare.port == 0)
        #expect(try SocketAddress(parsing: "[::1]").port == 0)
    }

    @Test func parsesLocalhostAndDefaults() throws {
        let a = try SocketAddress(parsing: "localhost:1")
        #expect(a == (try SocketAddress(parsing: "127.0.0.1:1")))
        #expect(a.port == 1)
        #expect(try SocketAddress(parsing: "127.0.0.1").port == 0)
        #expect(try SocketAddress(parsing: "127.0.0.1", defaultPort: 7000).port == 7000)
        #expect(try SocketAddress(parsing: "127.0.0.1:65535").port == 65535)
        var b = a
        b.port = 9
        #expect(b.port == 9 && b.host == "127.0.0.1")
        #expect(b != a)
        #expect(Set([a, b, try SocketAddress(parsing: "127.0.0.1:1")]).count == 2)
    }

    @Test(arguments: ["nohost:1", "1.2.3.4:99999", "[::1", "[::1]x", "[::1]:", "127.0.0.1:", ":80", "", "1.2.3.4:-1", "256.0.0.1:80"])
    func rejectsBadAddresses(_ text: String) {
        #expect(throws: AddressError.self) { try SocketAddress(parsing: text) }
    }

    @Test func errorsSayWhatIsWrong() {
        do {
            _ = try SocketAddress(parsing: "nohost:1")
            Issue.record("parsed")
        } catch {
            #expect(error.text == "nohost:1")
            #expect(error.description.contains("nohost"))
        }
        do {
            _ = try SocketAddress(parsing: "1.2.3.4:99999")
            Issue.record("parsed")
        } catch {
            #expect(error.problem.contains("65535"))
        }
    }
}
