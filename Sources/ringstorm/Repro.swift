import Foundation
import ArgumentParser
import Glibc
import Logging
import RingStorm
import RingStormEngine

struct ReproCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repro",
        abstract: "The seed in one command: a server with too few descriptors, clients that register at once and silent ones, both sides' view, and why.",
        discussion: """
        Starts `ringstorm serve` in a child process with --max-fds below the client count and --on-emfile for \
        when descriptors run out, then two groups of clients on loopback: registering clients (connect, send \
        a 75-byte REGISTER at once, a request every --interval, reconnect on error) and silent clients \
        (connect and send nothing, like telnet). Prints what the server saw beside what each group saw, \
        and explains the difference. See Docs/repro.md.

        The banner and live lines go to standard error, the report to standard output (to standard error \
        with --json -). Exit status: 0 the repro ran; 1 it failed or its report could not be written; 2 bad input.

        Examples:
          ringstorm repro
          ringstorm repro --on-emfile pause -d 5s
          ringstorm repro -c 100 --silent-connections 20 --max-fds 48 -d 3s --json r.json
        """
    )

    @Option(help: "What the server does when descriptors run out: shed (accept and close at once), pause (stop accepting), spin (retry at once); serve's option of the same name. Default: shed.")
    var onEmfile: EMFILEPolicy?

    /// The old name of --on-emfile.
    @Option(name: .customLong("policy"), help: .hidden)
    var policyAlias: EMFILEPolicy?

    @Option(name: [.customShort("c"), .long], parsing: .unconditional,
            help: "Registering clients, each holding at most one connection (the seed's: 75-byte registration at once, periodic requests, reconnect on error); load's --connections. Default: 200.")
    var connections: Int?

    /// The old name of --connections.
    @Option(name: .customLong("clients"), parsing: .unconditional, help: .hidden)
    var clientsAlias: Int?

    @Option(parsing: .unconditional,
            help: "Silent clients besides them (connect, send nothing, like telnet: load --silent); they connect --silent-delay after the others. Default: 50.")
    var silentConnections: Int?

    /// The old name of --silent-connections.
    @Option(name: .customLong("silent"), parsing: .unconditional, help: .hidden)
    var silentAlias: Int?

    /// One of a new option and its old name; both only when they agree.
    private static func either<Value: Equatable>(_ value: Value?, _ alias: Value?, _ name: String, _ old: String,
                                                 default fallback: Value) throws -> Value {
        if let value, let alias, value != alias {
            throw UsageError("\(old) is the old name of \(name); give one of them")
        }
        return value ?? alias ?? fallback
    }

    @Option(parsing: .unconditional, help: "The server's descriptor limit; below the client count to run out.")
    var maxFds: Int = 64

    @Option(name: [.customShort("d"), .long], parsing: .unconditional, help: "How long the clients run, e.g. 10s.")
    var duration: String = "10s"

    @Option(help: "Engine backend for the server and the clients: uring or epoll.")
    var backend: Backend = .uring

    @Option(parsing: .unconditional, help: "A registering client sends a request every INTERVAL.")
    var interval: String = "1s"

    @Option(parsing: .unconditional, help: "A registration or request unanswered this long counts as response_timeout (and the client reconnects).")
    var requestTimeout: String = "2s"

    @Option(parsing: .unconditional, help: "The server closes a connection that has not registered within this (0: never).")
    var registerTimeout: String = "5s"

    @Option(parsing: .unconditional, help: "Bytes of each REGISTER, padded with registration data the server ignores.")
    var registrationSize: String = "75"

    @Option(parsing: .unconditional, help: "When the silent clients connect, after the registering ones (default 1s, or a quarter of --duration when that is shorter).")
    var silentDelay: String?

    @Option(help: "Write both sides' reports and the explanation as JSON to FILE (- for standard output); checked before the run, replaced atomically at its end.")
    var json: String?

    @Option(parsing: .unconditional, help: "Live line every INTERVAL on stderr (0: none).")
    var reportInterval: String = "1s"

    @Option(help: "How much goes to standard error besides the report and errors: info (banner, live lines), notice (banner), warning (nothing but errors).")
    var logLevel: Logger.Level = .info

    func makeConfiguration() throws -> Repro.Configuration {
        var c = Repro.Configuration()
        c.clients = try Self.either(connections, clientsAlias, "--connections", "--clients", default: 200)
        c.silent = try Self.either(silentConnections, silentAlias, "--silent-connections", "--silent", default: 50)
        c.maxFDs = maxFds
        c.durationNanoseconds = try nanoseconds(duration, "--duration")
        c.backend = backend
        c.intervalNanoseconds = try nanoseconds(interval, "--interval")
        c.requestTimeoutNanoseconds = try nanoseconds(requestTimeout, "--request-timeout")
        c.registerTimeoutNanoseconds = try nanoseconds(registerTimeout, "--register-timeout")
        c.policy = try Self.either(onEmfile, policyAlias, "--on-emfile", "--policy", default: .shed)
        c.silentDelayNanoseconds = try silentDelay.map { try nanoseconds($0, "--silent-delay") }
            ?? min(1_000_000_000, c.durationNanoseconds / 4)
        c.registrationSize = try bytes(registrationSize, "--registration-size")
        do { try c.validate() } catch { throw UsageError(error.commandLineText) }
        return c
    }

    func run() throws {
        TerminationSignals.block()
        Diagnostics.setLevel(logLevel)
        let configuration = try makeConfiguration()
        let every = try nanoseconds(reportInterval, "--report-interval")
        // Checked before the run: a bad path fails now, not after it.
        let output = try json.map { try OutputFile(option: "--json", path: $0) }
        let run: ReproRun
        do {
            run = try ReproRun(configuration: configuration)
        } catch {
            throw UsageError(error.description)
        }
        Diagnostics.notice("ringstorm repro: server on \(run.address) (--max-fds \(configuration.maxFDs), --on-emfile \(configuration.policy), "
            + "\(configuration.backend)); \(configuration.clients) registering clients now, \(configuration.silent) silent ones after "
            + "\(DurationParsing.format(nanoseconds: configuration.silentDelayNanoseconds)); "
            + "\(DurationParsing.format(nanoseconds: configuration.durationNanoseconds)); Ctrl-C to stop early\n")
        var nextLine = monotonicNanoseconds() + every
        while !run.isFinished {
            if TerminationSignals.wait(nanoseconds: 0) != nil { run.stop() }
            run.poll(timeoutNanoseconds: 100_000_000)
            guard every > 0, monotonicNanoseconds() >= nextLine else { continue }
            nextLine += every
            Diagnostics.info(liveLine(run))
        }
        let report: ReproReport
        do {
            report = try run.finish()
        } catch {
            throw UsageError(error.description)
        }
        let failures = deliverReport(text: report.text + "\n", json: output) { try report.json() }
        if !failures.isEmpty { throw RunFailure(failures) }
    }

    private func liveLine(_ run: ReproRun) -> String {
        let p = run.progress
        var line = String(format: "[%5.1fs] server: ", run.elapsedSeconds)
        if let s = p.server {
            line += "open \(ReportFormat.count(s.openConnections))  accepted \(ReportFormat.count(s.report.accepted))  shed \(ReportFormat.count(s.report.shed))"
            let failures = s.acceptErrorCount
            if failures > 0 { line += "  accept errors \(ReportFormat.count(failures))" }
        } else {
            line += "-"
        }
        line += " | registering: open \(ReportFormat.count(p.registering.open))  " + failuresText(p.registering)
        if let silent = p.silent { line += " | silent: open \(ReportFormat.count(silent.open))  " + failuresText(silent) }
        return line + "\n"
    }

    private func failuresText(_ progress: LoadProgress) -> String {
        let items = Phase.allCases.flatMap { phase in
            progress.outcomes[phase].nonZero.map { "\(phase) \($0.outcome.name) \(ReportFormat.count($0.count))" }
        }
        return items.isEmpty ? "no failures" : items.joined(separator: ", ")
    }
}

extension ReproError {
    /// The problem in `ringstorm repro`'s terms: its option names, the numbers and the fix.
    var commandLineText: String {
        switch self {
        case .clients(let n): "--connections must be at least 1, not \(n)"
        case .silentNegative: "--silent-connections cannot be negative"
        case .tooManyClients(let n, let maximum): "--connections plus --silent-connections is \(n); the repro runs at most \(maximum) (use serve and load for more)"
        case .maxFDs(let n, let minimum): "--max-fds must be at least \(minimum) (the server needs a few for itself), not \(n)"
        case .duration(let d, let allowed):
            "--duration must be between \(DurationParsing.format(nanoseconds: allowed.lowerBound)) and "
                + "\(DurationParsing.format(nanoseconds: allowed.upperBound)), not \(DurationParsing.format(nanoseconds: d))"
        case .silentDelay: "--silent-delay must be less than --duration"
        case .intervalNotPositive: "--interval must be more than 0"
        case .requestTimeoutNotPositive: "--request-timeout must be more than 0"
        case .registerTimeoutNegative: "--register-timeout cannot be negative"
        case .registrationSize(let n, let minimum, let maximum): "--registration-size must be between \(minimum) and \(maximum) bytes, not \(n)"
        case .failed(let text): text
        }
    }
}
