import Foundation
import Glibc
import Testing
import RingStorm
import RingStormEngine
@testable import ringstorm

/// Bad input is refused before any connection starts, with one line naming the problem and the fix,
/// and exit status 2 (issue 10).
@Suite struct BadInputTests {
    /// Runs `ringstorm ARGUMENTS`, expects exit status 2 within a few seconds (no run), one line on
    /// standard error starting with `ringstorm: ` and containing every key word.
    func refused(_ arguments: [String], _ keyWords: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let started = monotonicNanoseconds()
        let run = try runRingstorm(arguments, seconds: 20)
        #expect(run.status == 2, "\(arguments): status \(run.status), \(run.errors)", sourceLocation: sourceLocation)
        #expect(run.errors.hasPrefix("ringstorm: "), "\(arguments): \(run.errors)", sourceLocation: sourceLocation)
        for word in keyWords {
            #expect(run.errors.contains(word), "\(arguments): '\(word)' not in: \(run.errors)", sourceLocation: sourceLocation)
        }
        #expect(!run.errors.contains("NSCocoaErrorDomain") && !run.errors.contains("Error Domain"), sourceLocation: sourceLocation)
        // No run: a run prints its report on standard output, whatever the machine's speed. The time
        // is checked too in a normal run; instrumented, starting the binary alone took 5.6 s (ASan, a
        // loaded machine).
        if activeSanitizer == nil {
            #expect(monotonicNanoseconds() - started < 5_000_000_000, "\(arguments) took a run's time", sourceLocation: sourceLocation)
        }
        #expect(run.output.isEmpty, "\(arguments): printed \(run.output)", sourceLocation: sourceLocation)
    }

    @Test(.enabled(if: ringstormBinary != nil)) func outputPathsAreCheckedBeforeTheRun() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            // A folder, a missing folder, a folder that takes no files: all before a 30 s run starts.
            for command in ["load", "serve", "repro"] {
                try refused([command, "--json", "/tmp", "-d", "30s"], ["--json /tmp", "EISDIR", "name a file"])
                try refused([command, "--json", "/no-such-folder-ringstorm/r.json", "-d", "30s"],
                            ["--json /no-such-folder-ringstorm/r.json", "ENOENT", "mkdir -p /no-such-folder-ringstorm"])
                try refused([command, "--json", "/proc/x.json", "-d", "30s"], ["--json /proc/x.json", "/proc", "/tmp/report.json"])
            }
            try refused(["load", "--connections-log", "/no-such-folder-ringstorm/c.log", "-d", "30s"],
                        ["--connections-log /no-such-folder-ringstorm/c.log", "ENOENT"])
            try refused(["load", "--connections-log", "-", "--json", "-"], ["standard output"])
            try refused(["load", "--connections-log", "-", "--processes", "2"], ["--connections-log -", "--processes", "name a file"])
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func negativeNumbersGetTheirRealError() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            try refused(["load", "--connections", "-5"], ["--connections must be at least 1, not -5"])
            try refused(["load", "-c", "-5"], ["--connections must be at least 1, not -5"])
            try refused(["load", "--threads", "-1"], ["--threads", "-1"])
            try refused(["load", "--pipeline", "-2"], ["--pipeline", "-2"])
            try refused(["load", "--duration", "-1s"], ["--duration"])
            try refused(["serve", "--max-fds", "-3"], ["--max-fds must be at least 1, not -3"])
            try refused(["repro", "--connections", "-4"], ["--connections must be at least 1, not -4"])
            try refused(["repro", "--clients", "-4"], ["--connections must be at least 1, not -4"])
            try refused(["repro", "--silent-connections", "-1"], ["--silent-connections cannot be negative"])
            try refused(["load", "--interval", "-1s"], ["--interval", "cannot be negative"])
            try refused(["serve", "--idle-timeout", "-5s"], ["--idle-timeout", "cannot be negative"])
            try refused(["load", "--message-size", "-4"], ["--message-size", "cannot be negative"])
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func addressesAreNumericWithAPort() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            try refused(["load", "--target", "localhost:7000"], ["'localhost' is a name", "names are not resolved", "127.0.0.1:7000"])
            try refused(["load", "--protocol", "http", "--target", "http://localhost:8080/"], ["'localhost' is a name", "names are not resolved"])
            try refused(["serve", "--listen", "localhost:7000"], ["names are not resolved"])
            try refused(["load", "--target", "::1:7000"], ["[::1]:7000"])
            try refused(["serve", "--listen", "127.0.0.1"], ["--listen 127.0.0.1 has no port", "port 0"])
            try refused(["load", "--target", "127.0.0.1"], ["--target 127.0.0.1 has no port"])
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func optionsThatDoNotCombineAreRefused() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            try refused(["load", "--pipeline", "8", "--interval", "1s"], ["--pipeline 8", "--interval", "Drop one"])
            try refused(["load", "--backoff", "5s,100ms", "--reconnect"], ["--backoff", "shorter than the first", "100ms,5s"])
            try refused(["load", "--backoff", "100ms,5s"], ["--backoff", "--reconnect"])
            try refused(["serve", "--duration", "0"], ["--duration must be more than 0"])
            try refused(["repro", "--on-emfile", "pause", "--policy", "shed"], ["--policy", "--on-emfile"])
            try refused(["repro", "--connections", "10", "--clients", "20"], ["--clients is the old name of --connections"])
            try refused(["repro", "--silent-connections", "1", "--silent", "2"], ["--silent is the old name of --silent-connections"])
            try refused(["repro", "-c", "9000", "--silent", "2000"], ["--connections plus --silent-connections is 11000"])
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func thresholdsAreParsedBeforeTheRun() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            try refused(["load", "--threshold", "p99<5xx"], ["--threshold 'p99<5xx'", "not a duration", "50ms"])
            try refused(["load", "--threshold", "frobs==1"], ["unknown metric 'frobs'", "connect.refused"])
            try refused(["load", "--threshold", "reset"], ["no comparison", "reset==0"])
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func unknownCommandListsTheCommands() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            try refused(["frobnicate"], ["unknown command 'frobnicate'", "serve, load, merge, repro and bench"])
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func versionAndExamples() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            let version = try runRingstorm(["--version"])
            #expect(version.status == 0)
            #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines) == ringstormVersion)
            for command in ["serve", "load", "repro", "bench"] {
                let help = try runRingstorm([command, "--help"])
                #expect(help.status == 0)
                #expect(help.output.contains("Examples:"), "\(command) --help has no examples")
                #expect(help.output.contains("Exit status"), "\(command) --help has no exit status")
            }
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func logLevelChoosesWhatGoesToStandardError() async throws {
        try await onThread {
            let quiet = try runRingstorm(["serve", "--listen", "127.0.0.1:0", "-d", "500ms", "--report-interval", "100ms", "--log-level", "warning"])
            #expect(quiet.status == 0)
            #expect(quiet.errors.isEmpty, "\(quiet.errors)")
            #expect(quiet.output.contains("server       "))
            let banner = try runRingstorm(["serve", "--listen", "127.0.0.1:0", "-d", "500ms", "--report-interval", "100ms", "--log-level", "notice"])
            #expect(banner.errors.hasPrefix("ringstorm serve: ringstorm on 127.0.0.1:"))
            #expect(!banner.errors.contains("accepted/s"))
            let all = try runRingstorm(["serve", "--listen", "127.0.0.1:0", "-d", "500ms", "--report-interval", "100ms"])
            #expect(all.errors.contains("accepted/s"))
        }
    }

    @Test func shortFlagsParse() throws {
        let load = try Load.parse(["-c", "7", "-d", "3s", "-t", "2"])
        let c = try load.makeConfiguration()
        #expect(c.connections == 7)
        #expect(c.durationNanoseconds == 3_000_000_000)
        #expect(c.threads == 2)
    }

    /// repro names its groups like load (`--connections`, `-c`, `--silent-connections`); the old
    /// `--clients` and `--silent N` still work, hidden.
    @Test func reproNamesItsGroupsLikeLoadAndKeepsTheOldNames() throws {
        let new = try ReproCommand.parse(["-c", "30", "--silent-connections", "5"]).makeConfiguration()
        #expect(new.clients == 30 && new.silent == 5)
        let long = try ReproCommand.parse(["--connections", "31", "--silent-connections", "0"]).makeConfiguration()
        #expect(long.clients == 31 && long.silent == 0)
        let old = try ReproCommand.parse(["--clients", "32", "--silent", "6"]).makeConfiguration()
        #expect(old.clients == 32 && old.silent == 6)
        let both = try ReproCommand.parse(["--connections", "33", "--clients", "33"]).makeConfiguration()
        #expect(both.clients == 33 && both.silent == 50)
        let defaults = try ReproCommand.parse([]).makeConfiguration()
        #expect(defaults.clients == 200 && defaults.silent == 50)
        let help = ReproCommand.helpMessage()
        #expect(help.contains("--silent-connections") && help.contains("--connections"))
        #expect(!help.contains("--clients") && !help.contains("--silent <"))
    }
}

/// A run that happened but failed exits 1 after printing its report (issue 10).
@Suite(.serialized) struct RunVerdictTests {
    @Test(.enabled(if: ringstormBinary != nil)) func nothingListeningExitsOneWithAHint() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            // A port nobody listens on: bind one and do not listen.
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            let address = try SocketAddress(parsing: "127.0.0.1:0")
            let bound = address.withSockAddr { bind(fd, $0, $1) }
            #expect(bound == 0)
            var local = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            let port = UInt16(bigEndian: local.sin_port)
            let run = try runRingstorm(["load", "--target", "127.0.0.1:\(port)", "-c", "3", "-d", "500ms", "--report-interval", "0"])
            #expect(run.status == 1, "\(run.errors)")
            #expect(run.output.contains("connect: refused 3"))
            #expect(run.errors.contains("no connection was established"))
            #expect(run.errors.contains("is a server listening there?"))
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func protocolMismatchIsNamed() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            let server = try ServerChild([], protocol: .echo)
            defer { server.terminate() }
            let run = try runRingstorm(["load", "--target", "127.0.0.1:\(server.port)", "-c", "2", "-d", "500ms", "--report-interval", "0"])
            #expect(run.status == 1, "\(run.output) \(run.errors)")
            #expect(run.errors.contains("no response parsed"))
            #expect(run.errors.contains("--protocol ringstorm"))
            #expect(run.errors.contains("echo server"))
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func protocolMismatchNamesHTTPFromItsStatusLine() async throws {
        try await onThread {
            // The HTTP server answers the REGISTER frame 400 and closes: the status line names it.
            let server = try ServerChild([], protocol: .http)
            defer { server.terminate() }
            let run = try runRingstorm(["load", "--target", "127.0.0.1:\(server.port)", "-c", "2", "-d", "500ms", "--report-interval", "0"])
            #expect(run.status == 1, "\(run.output) \(run.errors)")
            #expect(run.errors.contains("no response parsed"))
            #expect(run.errors.contains("HTTP status line: try --protocol http"))
            // The HTTP client against an echo server gets its own request line back.
            let echo = try ServerChild([], protocol: .echo)
            defer { echo.terminate() }
            let back = try runRingstorm(["load", "--protocol", "http", "--target", "127.0.0.1:\(echo.port)", "-c", "2", "-d", "500ms",
                                         "--report-interval", "0"])
            #expect(back.status == 1, "\(back.output) \(back.errors)")
            #expect(back.errors.contains("sent our request line back: an echo server"))
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func thresholdsDecideTheExitStatusAndTheJSONIsReplacedAtomically() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            let server = try ServerChild([], protocol: .echo)
            defer { server.terminate() }
            let json = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-verdict-\(UUID()).json").path
            defer { unlink(json) }
            try Data("old".utf8).write(to: URL(fileURLWithPath: json))
            let target = "127.0.0.1:\(server.port)"
            let good = try runRingstorm(["load", "--target", target, "--protocol", "echo", "-c", "2", "-d", "500ms", "--report-interval", "0",
                                         "--threshold", "established==connections", "--threshold", "answered>=99%", "--threshold", "reset==0",
                                         "--json", json])
            #expect(good.status == 0, "\(good.errors)")
            #expect(good.errors.contains("threshold established==connections ok"))
            let report = try LoadReport(json: Data(contentsOf: URL(fileURLWithPath: json)))
            #expect(report.connections.established == 2)
            // No temporary file left beside it.
            let folder = (json as NSString).deletingLastPathComponent
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix(".ringstorm-verdict") }
            #expect(leftovers.isEmpty)

            let crossed = try runRingstorm(["load", "--target", target, "--protocol", "echo", "-c", "2", "-d", "500ms", "--report-interval", "0",
                                            "--threshold", "p99<1ns", "--threshold", "connect.refused==0"])
            #expect(crossed.status == 1)
            #expect(crossed.output.contains("load "))
            #expect(crossed.errors.contains("ringstorm: threshold p99<1ns crossed: was"))
            #expect(!crossed.errors.contains("connect.refused==0 crossed"))

            // `--json -`: the JSON alone on standard output, the text report on standard error.
            let piped = try runRingstorm(["load", "--target", target, "--protocol", "echo", "-c", "1", "-d", "300ms", "--report-interval", "0",
                                          "--json", "-"])
            #expect(piped.status == 0)
            #expect((try? LoadReport(json: Data(piped.output.utf8))) != nil, "\(piped.output)")
            #expect(piped.errors.contains("connections  attempted 1"))
        }
    }

    /// A connections log on a full disk (issue 12 item 5: it wrote 0 lines and exited 0): the run still
    /// prints its report and writes its JSON, names the path and the errno in words, and exits 1; the
    /// library's verdict says the same.
    @Test(.enabled(if: ringstormBinary != nil)) func aConnectionsLogOnAFullDiskIsReported() async throws {
        try await onThread {
            let server = try ServerChild([], protocol: .echo)
            defer { server.terminate() }
            let json = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-full-\(UUID()).json").path
            defer { unlink(json) }
            let run = try runRingstorm(["load", "--target", "127.0.0.1:\(server.port)", "--protocol", "echo", "-c", "3", "-d", "300ms",
                                        "--report-interval", "0", "--connections-log", "/dev/full", "--json", json])
            #expect(run.status == 1, "\(run.errors)")
            #expect(run.output.contains("connections  attempted 3"))
            #expect(run.errors.contains("ringstorm: --connections-log /dev/full: write failed: ENOSPC (No space left on device); 3 lines lost"),
                    "\(run.errors)")
            let report = try LoadReport(json: Data(contentsOf: URL(fileURLWithPath: json)))
            #expect(report.connectionsLogFailure == .init(error: "ENOSPC (No space left on device)", linesLost: 3))
            var configuration = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: server.port))
            configuration.connectionsLogPath = "/dev/full"
            let verdict = LoadVerdict(report: report, configuration: configuration)
            #expect(verdict.exitStatus == 1)
            // The library's verdict is data and names no option; the command words it with its flag.
            guard case .connectionsLogFailed(let path, let error, _)? = verdict.failure else {
                Issue.record("no connections-log failure in \(String(describing: verdict.failure))"); return
            }
            #expect(path == "/dev/full" && error.hasPrefix("ENOSPC"))
            #expect(verdict.failure!.description.contains("the connections log /dev/full: write failed: ENOSPC"))
            #expect(!verdict.failure!.description.contains("--"))
            #expect(verdict.failure!.commandLineText.contains("--connections-log /dev/full: write failed: ENOSPC"))
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func aWriteFailureNamesThePathAndTheResultsAreStillPrinted() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            let server = try ServerChild([], protocol: .echo)
            defer { server.terminate() }
            // /dev/full: a device, written in place (never renamed over), and every write fails with ENOSPC.
            let run = try runRingstorm(["load", "--target", "127.0.0.1:\(server.port)", "--protocol", "echo", "-c", "1", "-d", "300ms",
                                        "--report-interval", "0", "--json", "/dev/full"])
            #expect(run.status == 1)
            #expect(run.output.contains("connections  attempted 1"))
            #expect(run.errors.contains("ringstorm: --json /dev/full: cannot write: ENOSPC"), "\(run.errors)")
            var info = stat()
            #expect(stat("/dev/full", &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR)
            // A symbolic link: the file it names is replaced, the link stays.
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-link-\(UUID())").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try Data("old".utf8).write(to: URL(fileURLWithPath: folder + "/real.json"))
            try FileManager.default.createSymbolicLink(atPath: folder + "/link.json", withDestinationPath: folder + "/real.json")
            let linked = try runRingstorm(["load", "--target", "127.0.0.1:\(server.port)", "--protocol", "echo", "-c", "1", "-d", "300ms",
                                           "--report-interval", "0", "--json", folder + "/link.json"])
            #expect(linked.status == 0, "\(linked.errors)")
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/link.json")) == folder + "/real.json")
            #expect((try? LoadReport(json: Data(contentsOf: URL(fileURLWithPath: folder + "/real.json")))) != nil)
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func sigtermStillWritesTheReport() async throws {
        // Blocking work (children, sleeps) on a thread of its own: the cooperative pool stays free.
        try await onThread {
            let server = try ServerChild([], protocol: .echo)
            defer { server.terminate() }
            let json = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-sigterm-\(UUID()).json").path
            defer { unlink(json) }
            let child = try RingstormChild(["load", "--target", "127.0.0.1:\(server.port)", "--protocol", "echo", "-c", "2", "-d", "60s",
                                            "--report-interval", "0", "--json", json])
            try waitUntilBlocking(seconds: 10) { child.errors.contains("Ctrl-C") }
            usleep(300_000)
            child.process.terminate()
            let (status, output, _) = child.waitForExit(seconds: 15)
            #expect(status == 0)
            #expect(output.contains("connections  attempted 2"))
            let report = try LoadReport(json: Data(contentsOf: URL(fileURLWithPath: json)))
            #expect(report.durationSeconds < 30)
        }
    }
}

private func waitUntilBlocking(seconds: Double, _ condition: () -> Bool) throws {
    let deadline = monotonicNanoseconds() + Int64(seconds * 1e9)
    while !condition() {
        guard monotonicNanoseconds() < deadline else { throw ServerTestError("timed out") }
        usleep(20_000)
    }
}

/// `Threshold` and `LoadVerdict`: the library's verdict, the same the command line exits with.
@Suite struct ThresholdTests {
    func report() -> LoadReport {
        var outcomes = PhaseOutcomes()
        outcomes.record(.refused, in: .connect, times: 2)
        outcomes.record(.reset, in: .request, times: 1)
        outcomes.record(.reset, in: .idle, times: 1)
        var r = LoadReport(backend: "uring", durationSeconds: 1, connections: .init(attempted: 100, established: 98, peakOpen: 98),
                           requests: .init(sent: 1000, answered: 995), outcomes: outcomes)
        r.latency.request = LatencySummary(count: 995, p50: 100, p90: 200, p99: 40_000, p999: 60_000, max: 70_000)
        return r
    }

    func configuration(connections: Int = 100) throws -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: try SocketAddress(parsing: "127.0.0.1:7200"))
        c.connections = connections
        return c
    }

    func passes(_ text: String) throws -> Bool {
        try Threshold(parsing: text).evaluate(report(), connections: 100).passed
    }

    @Test func metricsAndUnits() throws {
        #expect(try passes("reset==2"))
        #expect(try !passes("reset==0"))
        #expect(try passes("connect.refused==2"))
        #expect(try passes("request.reset==1"))
        #expect(try passes("answered>=99.5%"))
        #expect(try !passes("answered>=99.9%"))
        #expect(try passes("p99<50ms"))
        #expect(try !passes("p99<40ms"))
        #expect(try passes("p99.9 <= 60ms"))
        #expect(try passes("max<1s"))
        #expect(try !passes("established==connections"))
        #expect(try passes("established>=98%"))
        #expect(try passes("failures<=4"))
        #expect(try passes("EHOSTUNREACH==0"))
        #expect(try passes("peak_open!=0"))
    }

    @Test func latencyUnitsAreTheDurationFlags() throws {
        // One duration reader for every flag: a threshold's latency takes the same units.
        #expect(try Threshold(parsing: "p99<0.05s").bound == .value(50_000))
        #expect(try Threshold(parsing: "p99<50ms").bound == .value(50_000))
        #expect(try Threshold(parsing: "max<1m30s").bound == .value(90_000_000))
        #expect(try Threshold(parsing: "p50<250us").bound == .value(250))
        #expect(try Threshold(parsing: "p50<250").bound == .value(250))  // a bare number is µs
        #expect(throws: ThresholdError.self) { try Threshold(parsing: "p99<-5ms") }
    }

    @Test func badExpressionsNameTheFix() {
        #expect(throws: ThresholdError.self) { try Threshold(parsing: "p99<fast") }
        #expect(throws: ThresholdError.self) { try Threshold(parsing: "p99<5%") }
        #expect(throws: ThresholdError.self) { try Threshold(parsing: "nonsense>1") }
        #expect(throws: ThresholdError.self) { try Threshold(parsing: "answered") }
        #expect(throws: ThresholdError.self) { try Threshold(parsing: "p99<answered") }
    }

    @Test func verdict() throws {
        let thresholds = try ["reset==0", "answered>=99%"].map { try Threshold(parsing: $0) }
        let verdict = LoadVerdict(report: report(), configuration: try configuration(), thresholds: thresholds)
        #expect(!verdict.passed)
        #expect(verdict.exitStatus == 1)
        #expect(verdict.crossed.map(\.threshold.expression) == ["reset==0"])
        #expect(verdict.lines == ["threshold reset==0 crossed: was 2"])
        #expect(LoadVerdict(report: report(), configuration: try configuration()).passed)

        // Nothing established: a failure with a hint, thresholds or not.
        var none = LoadReport(backend: "uring", durationSeconds: 1, connections: .init(attempted: 5))
        none.outcomes.record(.refused, in: .connect, times: 5)
        let empty = LoadVerdict(report: none, configuration: try configuration())
        #expect(!empty.passed)
        #expect(empty.failure?.description.contains("refused every connect") == true)
        #expect(empty.failure?.description.contains("--") == false)
        #expect(empty.failure?.commandLineText.contains("ringstorm serve --listen") == true)
        // Latency thresholds with nothing measured are not met.
        let latency = LoadVerdict(report: none, configuration: try configuration(), thresholds: [try Threshold(parsing: "p99<1s")])
        #expect(latency.crossed.count == 1)
    }
}

/// The library for rigs: `Duration`s, cancellation returning the partial report, progress as an
/// `AsyncSequence` (issue 10).
@Suite struct RigLibraryTests {
    func echoServer(_ backend: Backend) throws -> RingStormServer {
        var serverConfiguration = RingStormServer.Configuration.testing(backend)
        serverConfiguration.protocol = .echo
        return try RingStormServer(configuration: serverConfiguration)
    }

    func load(_ server: RingStormServer, _ backend: Backend, duration: Duration) -> LoadGenerator.Configuration {
        var load = LoadGenerator.Configuration(target: server.address)
        load.backend = backend
        load.wireProtocol = .echo
        load.connections = 2
        load.duration = duration
        load.requestTimeout = .seconds(2)
        load.pacing = .openLoop(interval: .milliseconds(50))
        return load
    }

    /// Every time setting of the load configuration has a `Duration` accessor over its nanoseconds.
    @Test func loadConfigurationTakesDurations() {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        c.duration = .milliseconds(1500)
        c.connectTimeout = .seconds(3)
        c.requestTimeout = .milliseconds(250)
        c.reconnectBackoff = .milliseconds(50) ... .seconds(2)
        c.drain = .milliseconds(300)
        #expect(c.durationNanoseconds == 1_500_000_000 && c.duration == .milliseconds(1500))
        #expect(c.connectTimeoutNanoseconds == 3_000_000_000 && c.requestTimeoutNanoseconds == 250_000_000)
        #expect(c.reconnectMinimumNanoseconds == 50_000_000 && c.reconnectMaximumNanoseconds == 2_000_000_000)
        #expect(c.drainNanoseconds == 300_000_000 && c.drain == .milliseconds(300))
        #expect(LoadGenerator.Pacing.openLoop(interval: .milliseconds(20)) == .openLoop(intervalNanoseconds: 20_000_000))
    }

    @Test(arguments: [Backend.uring, .epoll]) func cancellingTheTaskReturnsThePartialReport(_ backend: Backend) async throws {
        let server = try echoServer(backend)
        defer { server.stop(); _ = server.wait() }
        let configuration = load(server, backend, duration: .seconds(60))
        #expect(configuration.durationNanoseconds == 60_000_000_000)
        let generator = LoadGenerator(configuration: configuration)
        let run = Task { try await generator.run() }
        // Cancelled from a thread of its own as soon as answers flow, so the moment of the cancel does
        // not wait for a thread of the cooperative pool. The task itself needs one to start, and the
        // suite's synchronous tests can hold both for over a minute under a sanitizer (ASan: no
        // connection after 45 s; a full run on a loaded 2-core machine: none after 60 s), so the wait
        // is for the answers, bounded only far out.
        try await onThread {
            let deadline = monotonicNanoseconds() + Int64(300e9 * sanitizerScale)
            while generator.progress.requests.answered == 0 && monotonicNanoseconds() < deadline { usleep(20_000) }
            run.cancel()
        }
        let report = try await run.value
        // The run's own length (start to stop), not the test's: a 60 s run that the cancel ended.
        #expect(report.durationSeconds < 30, "cancelling did not end the 60 s run (it lasted \(report.durationSeconds) s)")
        #expect(report.connections.established == 2)
        #expect(report.requests.answered > 0)
    }

    @Test func progressIsAnAsyncSequenceThatEndsWithTheRun() async throws {
        let server = try echoServer(.uring)
        defer { server.stop(); _ = server.wait() }
        let generator = LoadGenerator(configuration: load(server, .uring, duration: .milliseconds(400)))
        try generator.start()
        var last: LoadProgress?
        for await progress in generator.progressUpdates(every: .milliseconds(50)) { last = progress }
        _ = try await onThread { generator.wait() }
        #expect(last?.connections.established == 2)
    }
}

/// `--metrics HOST:PORT`: scraped during a run, checked against the run's report (issue 10).
@Suite(.serialized) struct MetricsEndpointTests {
    /// GET /metrics from `address` (`HOST:PORT`): the body.
    func scrape(_ address: String, path: String = "/metrics") throws -> (status: String, body: String) {
        let target = try SocketAddress(parsing: address)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        guard target.withSockAddr({ connect(fd, $0, $1) }) == 0 else { throw ServerTestError("cannot connect to \(address)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = text.components(separatedBy: "\r\n").first ?? ""
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, body)
    }

    func value(_ body: String, _ metric: String) -> Double? {
        body.split(separator: "\n").first { $0.hasPrefix(metric + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    /// One series of a histogram family: the `_bucket` values in order (`+Inf` last), `_sum`, `_count`.
    func histogram(_ body: String, _ name: String, kind: String) -> (buckets: [Double], sum: Double, count: Double)? {
        let lines = body.split(separator: "\n")
        let buckets = lines.filter { $0.hasPrefix("\(name)_bucket{kind=\"\(kind)\",") }.compactMap { Double($0.split(separator: " ").last!) }
        guard let sum = value(body, "\(name)_sum{kind=\"\(kind)\"}"), let count = value(body, "\(name)_count{kind=\"\(kind)\"}") else { return nil }
        return (buckets, sum, count)
    }

    /// The histogram text from known latencies: cumulative, in seconds, `+Inf` and `_count` the total.
    @Test func latencyHistogramsFollowPrometheusConventions() {
        var recorder = LatencyRecorder()
        for microseconds: UInt64 in [5, 20, 20, 1_000, 20_000_000] { recorder.record(microseconds: microseconds) }
        let text = MetricsEndpoint.histogramText("x_seconds", help: "h", [("request", recorder), ("connect", LatencyRecorder())])
        #expect(text.hasPrefix("# HELP x_seconds h\n# TYPE x_seconds histogram\n"))
        #expect(text.contains(#"x_seconds_bucket{kind="request",le="1e-05"} 1"#))
        #expect(text.contains(#"x_seconds_bucket{kind="request",le="2.5e-05"} 3"#))
        #expect(text.contains(#"x_seconds_bucket{kind="request",le="0.0005"} 3"#))
        #expect(text.contains(#"x_seconds_bucket{kind="request",le="0.001"} 4"#))
        #expect(text.contains(#"x_seconds_bucket{kind="request",le="10"} 4"#))
        #expect(text.contains(#"x_seconds_bucket{kind="request",le="+Inf"} 5"#))
        #expect(text.contains(#"x_seconds_count{kind="request"} 5"#))
        let parsed = histogram(text, "x_seconds", kind: "request")
        #expect(parsed.map { abs($0.sum - 20.001045) < 0.02 } == true, "\(String(describing: parsed))")
        #expect(text.contains(#"x_seconds_bucket{kind="connect",le="+Inf"} 0"#))
        #expect(text.contains(#"x_seconds_count{kind="connect"} 0"#))
    }

    func metricsAddress(_ banner: String) -> String? {
        guard let range = banner.range(of: #"metrics on http://127\.0\.0\.1:\d+"#, options: .regularExpression) else { return nil }
        return String(banner[range].dropFirst("metrics on http://".count))
    }

    @Test(.enabled(if: ringstormBinary != nil)) func scrapedDuringARunAndMatchingTheReport() async throws {
        try await onThread {
            let server = try ServerChild(["--metrics", "127.0.0.1:0"], protocol: .echo)
            defer { server.terminate() }
            let json = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-metrics-\(UUID()).json").path
            defer { unlink(json) }
            let load = try RingstormChild(["load", "--target", "127.0.0.1:\(server.port)", "--protocol", "echo", "-c", "3", "-d", "2s",
                                           "--interval", "10ms", "--report-interval", "0", "--metrics", "127.0.0.1:0", "--json", json])
            var address: String?
            let deadline = monotonicNanoseconds() + 10_000_000_000
            while address == nil && monotonicNanoseconds() < deadline {
                address = metricsAddress(load.errors)
                usleep(20_000)
            }
            let loadMetrics = try #require(address)
            // After the workers published (about once a second), during the run.
            usleep(1_300_000)
            let scraped = try scrape(loadMetrics)
            #expect(scraped.status == "HTTP/1.1 200 OK")
            #expect(scraped.body.contains("# TYPE ringstorm_load_requests_answered_total counter"))
            #expect(value(scraped.body, "ringstorm_load_connections_established_total") == 3)
            #expect(value(scraped.body, "ringstorm_load_connections_open") == 3)
            let answeredDuring = value(scraped.body, "ringstorm_load_requests_answered_total") ?? 0
            #expect(answeredDuring > 0)
            // The latency histograms: cumulative buckets, +Inf equal to _count, and the request
            // histogram's _count equal to the answered requests of the same snapshot.
            #expect(scraped.body.contains("# TYPE ringstorm_load_latency_seconds histogram"))
            let requests = try #require(histogram(scraped.body, "ringstorm_load_latency_seconds", kind: "request"))
            #expect(requests.buckets.count == MetricsEndpoint.latencyBuckets.count + 1)
            #expect(zip(requests.buckets, requests.buckets.dropFirst()).allSatisfy { $0.1 >= $0.0 }, "\(requests.buckets)")
            #expect(requests.buckets.last == requests.count)
            #expect(requests.count == answeredDuring)
            #expect(requests.sum > 0)
            let connects = try #require(histogram(scraped.body, "ringstorm_load_latency_seconds", kind: "connect"))
            #expect(connects.count == 3 && connects.buckets.last == 3)
            #expect(try scrape(loadMetrics, path: "/").status == "HTTP/1.1 404 Not Found")
            let (status, _, errors) = load.waitForExit(seconds: 20)
            #expect(status == 0, "\(errors)")
            let report = try LoadReport(json: Data(contentsOf: URL(fileURLWithPath: json)))
            #expect(report.connections.established == 3)
            #expect(Double(report.requests.answered) >= answeredDuring)
            #expect(Double(report.connections.attempted) == value(scraped.body, "ringstorm_load_connections_attempted_total"))
            #expect(Double(report.requests.answered) >= requests.count)
            #expect(Double(report.connections.established) == connects.count)
            #expect(Double(report.latency.request.count) == Double(report.requests.answered))
        }
    }

    @Test(.enabled(if: ringstormBinary != nil)) func aMetricsAddressInUseIsBadInput() async throws {
        try await onThread {
            let server = try ServerChild([], protocol: .echo)
            defer { server.terminate() }
            let run = try runRingstorm(["load", "--target", "127.0.0.1:\(server.port)", "-d", "30s", "--metrics", "127.0.0.1:\(server.port)"])
            #expect(run.status == 2)
            #expect(run.errors.contains("--metrics 127.0.0.1:\(server.port): cannot listen: EADDRINUSE"), "\(run.errors)")
        }
    }
}

/// A refused io_uring_setup is worded with this command's options: the cause, `--backend epoll`, and
/// the fix that keeps io_uring where there is one.
@Suite struct IOUringRefusalWordingTests {
    @Test func eachCauseSuggestsTheEpollBackendAndItsOwnFix() {
        let cases: [(EngineError.Reason, [String])] = [
            (.ioUringDisabled(by: .seccompFilter), ["seccomp filter", "Docker 25+, containerd 2.0+", "use --backend epoll",
                                                     "seccomp profile that allows io_uring_setup", "ringstorm-io-uring.json"]),
            (.ioUringDisabled(by: .sysctl(2)), ["kernel.io_uring_disabled=2", "use --backend epoll", "sysctl -w kernel.io_uring_disabled=0"]),
            (.ioUringDisabled(by: .sysctl(1)), ["kernel.io_uring_disabled=1", "use --backend epoll", "kernel.io_uring_group"]),
            (.ioUringDisabled(by: .unknown), ["neither sysctl kernel.io_uring_disabled nor a seccomp filter", "use --backend epoll"]),
            (.ioUringMissing, ["this kernel has no io_uring: use --backend epoll"]),
        ]
        for (reason, words) in cases {
            let text = EngineError("io_uring_setup", .notPermitted, reason: reason).commandLineDescription
            #expect(text.hasPrefix("io_uring_setup: "), "\(text)")
            for word in words { #expect(text.contains(word), "'\(word)' not in: \(text)") }
            #expect(!text.contains("the epoll backend"), "the engine's wording leaked: \(text)")
        }
    }

    /// The real thing: `ringstorm serve` under a seccomp filter that refuses io_uring_setup with EPERM,
    /// as Docker's and containerd's default profiles do (`Scripts/deny-io-uring`), then with epoll.
    @Test(.enabled(if: ringstormBinary != nil)) func underASeccompFilterServeNamesItAndEpollRuns() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Scripts/deny-io-uring").path
        let refused = try runRingstormUnder(script, ["serve", "--listen", "127.0.0.1:0", "--duration", "1s"])
        if refused.status == 127 { try Test.cancel("python3 is not installed: \(refused.errors)") }
        #expect(refused.status == 2, "\(refused.errors)")
        #expect(refused.errors.contains("io_uring_setup: EPERM"), "\(refused.errors)")
        #expect(refused.errors.contains("seccomp filter"), "\(refused.errors)")
        #expect(refused.errors.contains("use --backend epoll"), "\(refused.errors)")
        let epoll = try runRingstormUnder(script, ["serve", "--listen", "127.0.0.1:0", "--duration", "1s", "--backend", "epoll"])
        #expect(epoll.status == 0, "\(epoll.errors)")
    }

    private func runRingstormUnder(_ script: String, _ arguments: [String]) throws -> (status: Int32, errors: String) {
        let errorsURL = FileManager.default.temporaryDirectory.appendingPathComponent("deny-io-uring-\(UUID())")
        FileManager.default.createFile(atPath: errorsURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorsURL) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, ringstormBinary!] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: errorsURL)
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOf: errorsURL, encoding: .utf8)) ?? "")
    }
}

/// A container starts processes at 1024 descriptors under a much larger hard limit (containerd 2.0:
/// 1024/524,288); `ringstorm` raises its soft limit to the hard one before checking a budget.
@Suite struct DescriptorLimitTests {
    @Test(.enabled(if: ringstormBinary != nil)) func aLowSoftLimitIsRaisedBeforeTheBudget() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -Sn 512 && exec \"$0\" load --target 127.0.0.1:1 --connections 2000 --duration 1s --report-interval 0",
                             ringstormBinary!]
        let errorsURL = FileManager.default.temporaryDirectory.appendingPathComponent("nofile-\(UUID())")
        FileManager.default.createFile(atPath: errorsURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorsURL) }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: errorsURL)
        try process.run()
        process.waitUntilExit()
        let errors = (try? String(contentsOf: errorsURL, encoding: .utf8)) ?? ""
        // Without the raise: 2,000 connections in 512 descriptors is refused (exit 2). With it, the run
        // goes (nothing listens on port 1: exit 1, connections refused).
        #expect(process.terminationStatus == 1, "\(errors)")
        #expect(!errors.contains("RLIMIT_NOFILE"), "\(errors)")
    }
}
