import ArgumentParser
import Foundation
import Glibc
import RingStorm
import RingStormEngine

/// `ringstorm bench`: the same load on io_uring and on epoll, interleaved, in one table.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Compare io_uring with epoll in one command: a server and a load generator on each backend, interleaved rounds, one table.",
        discussion: """
        Each run starts this binary's server (serve) and load generator (load) as two processes, pinned to \
        two CPUs when there are two to use, on 127.0.0.1; with --target only the load side runs, against \
        your server. Rounds alternate the backends (io_uring, epoll, io_uring, ...) so each ratio compares \
        runs taken close together. The table gives each backend's median over rounds with its min–max, and \
        the io_uring/epoll ratio of the medians. Exit status: 0 done; 1 a run failed or a report could not \
        be written; 2 bad input. See Docs/benchmarks.md.

        Examples:
          ringstorm bench
          ringstorm bench -c 5000 -d 10s --rounds 3 --json bench.json --html bench.html
          ringstorm bench --target 127.0.0.1:7200 --protocol ringstorm
        """
    )

    @Option(name: [.customShort("c"), .long], parsing: .unconditional, help: "Connections of the load generator, one request in flight each.")
    var connections: Int = 1000

    @Option(parsing: .unconditional, help: "Request payload (ringstorm) or message (echo) size, e.g. 64, 4k.")
    var messageSize: String = "64"

    @Option(name: [.customShort("d"), .long], parsing: .unconditional, help: "How long each run's load lasts (at least 1s), e.g. 5s.")
    var duration: String = "5s"

    @Option(parsing: .unconditional, help: "Rounds; each runs io_uring, then epoll.")
    var rounds: Int = 2

    @Option(help: "Wire protocol: echo, ringstorm or http.")
    var `protocol`: LoadGenerator.WireProtocol = .echo

    @Option(name: [.customShort("t"), .long], parsing: .unconditional, help: "Engine threads of each side.")
    var threads: Int = 1

    @Option(help: "Only the load side, against this server (HOST:PORT, loopback or a namespace of yours).")
    var target: String?

    @Option(parsing: .unconditional, help: "How often the sides are sampled for the time series, e.g. 250ms.")
    var sampleInterval: String = "250ms"

    @Option(help: "Write the numbers as JSON to FILE (- for standard output); checked before the runs, replaced atomically at the end.")
    var json: String?

    @Option(help: "Write a self-contained HTML report with SVG charts to FILE; checked before the runs.")
    var html: String?

    @Flag(help: "No progress bar or progress lines.")
    var quiet = false

    /// The bench these flags describe; every bad value is refused here, before any process starts.
    func makeConfiguration() throws -> Bench.Configuration {
        var c = Bench.Configuration()
        c.connections = connections
        c.messageSize = try bytes(messageSize, "--message-size")
        c.durationNanoseconds = try nanoseconds(duration, "--duration")
        c.rounds = rounds
        c.wireProtocol = `protocol`
        c.threads = threads
        c.sampleIntervalNanoseconds = try nanoseconds(sampleInterval, "--sample-interval")
        if `protocol` == .raw {
            throw UsageError("--protocol raw needs a request template and framing the bench does not take; use echo, ringstorm or http (or ringstorm load --protocol raw)")
        }
        if let target { c.target = try AddressArgument.parse(target, option: "--target") }
        do { try c.validate() } catch {
            throw UsageError(Self.text(of: error, c))
        }
        // The load's own checks (threads, message size, descriptors), in this command's words.
        let probe = c.load(backend: .uring, target: c.target ?? SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        do { try LoadGenerator(configuration: probe).validate() } catch {
            switch error {
            case .descriptors(let s):
                throw UsageError("--connections \(ReportFormat.count(s.connections)) needs as many descriptors in each side's process, "
                    + "but one process may open \(ReportFormat.count(s.usable)) (RLIMIT_NOFILE); lower --connections to \(ReportFormat.count(s.usable))")
            default:
                throw UsageError(error.commandLineText)
            }
        }
        return c
    }

    static func text(of error: BenchError, _ c: Bench.Configuration) -> String {
        switch error {
        case .connections(let n): return "--connections must be at least 1, not \(n)"
        case .rounds(let n, let maximum): return "--rounds must be between 1 and \(maximum), not \(n)"
        case .durationTooShort: return "--duration must be at least 1s (each run needs time to connect and settle), not \(DurationParsing.format(nanoseconds: c.durationNanoseconds))"
        case .noBackend: return "no backend to compare"
        case .protocolNotServed(let p): return "--protocol \(p): the bench's server does not speak it; give --target HOST:PORT of a server that does"
        case .sampleInterval: return "--sample-interval must be at least 50ms, not \(DurationParsing.format(nanoseconds: c.sampleIntervalNanoseconds))"
        case .sideFailed(let text): return text
        }
    }

    func run() throws {
        TerminationSignals.block()
        let configuration = try makeConfiguration()
        let jsonFile = try json.map { try OutputFile(option: "--json", path: $0) }
        let htmlFile = try html.map { try OutputFile(option: "--html", path: $0) }
        if jsonFile?.isStandardOutput == true && htmlFile?.isStandardOutput == true {
            throw UsageError("--json - and --html - both write to standard output; send one of them to a file")
        }
        let runner = try Bench.Runner(configuration: configuration)
        let progress = BenchProgress(quiet: quiet, configuration: configuration)
        progress.start(runner.placement)
        let result: Bench.Result
        do {
            result = try runner.run(progress: { progress.update($0) }, shouldStop: { TerminationSignals.wait(nanoseconds: 0) != nil })
        } catch {
            progress.finish()
            throw RunFailure(Self.text(of: error, configuration))
        }
        progress.finish()
        guard !result.runs.isEmpty else { throw RunFailure("stopped before any run ended; nothing to report") }
        let standardOutputTaken = jsonFile?.isStandardOutput == true || htmlFile?.isStandardOutput == true
        var failures = deliverReport(text: result.text, json: jsonFile, standardOutputTaken: standardOutputTaken) { try result.json() }
        if let htmlFile {
            do { try htmlFile.write(Data(BenchHTML.render(result).utf8)) } catch { failures.append("\(error)") }
        }
        if !failures.isEmpty { throw RunFailure(failures) }
    }
}

/// The bench's progress on standard error: a bar redrawn in place on a terminal, one line per finished
/// run when piped.
final class BenchProgress {
    let quiet: Bool
    let terminal: Bool
    let configuration: Bench.Configuration
    private var drawn = false

    init(quiet: Bool, configuration: Bench.Configuration) {
        self.quiet = quiet
        terminal = isatty(2) == 1
        self.configuration = configuration
    }

    func start(_ placement: CPUPlacement) {
        guard !quiet else { return }
        let c = configuration
        let runs = c.rounds * c.backends.count
        let seconds = Double(runs) * (Double(c.durationNanoseconds) / 1e9 + 2)
        var line = "ringstorm bench: \(runs) runs (\(c.rounds) round\(c.rounds == 1 ? "" : "s") × io_uring, epoll) of "
            + "\(DurationParsing.format(nanoseconds: c.durationNanoseconds)), about \(Int(seconds.rounded())) s"
        switch (placement.server, placement.load) {
        case (let s?, let l?): line += "; server on CPU \(s), load on CPU \(l)"
        case (nil, let l?): line += "; load on CPU \(l)"
        default: line += "; not pinned (fewer than 2 CPUs)"
        }
        FileHandleOutput.standardError(line + "\n")
    }

    func update(_ p: Bench.Progress) {
        guard !quiet else { return }
        let name = p.backend.benchName
        if let run = p.finished {
            let figures = run.figures
            var line = "round \(p.round)/\(p.rounds) \(name): \(ReportFormat.count(Int(run.requestsPerSecond.rounded()))) requests/s"
            if let cpu = figures[.serverCPU] { line += String(format: ", server %.2f µs/request", cpu) }
            line += String(format: ", load %.2f µs/request", figures[.loadCPU] ?? 0)
            line += ", p99 \(ReportFormat.count(Int(figures[.p99] ?? 0))) µs"
            if terminal { FileHandleOutput.standardError("\r\u{1B}[2K") }
            FileHandleOutput.standardError(line + "\n")
            drawn = false
            if terminal { draw(p, name) }
            return
        }
        if terminal { draw(p, name) }
    }

    private func draw(_ p: Bench.Progress, _ name: String) {
        let width = 30
        let filled = Int((p.fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "█", count: min(filled, width)) + String(repeating: "·", count: max(0, width - filled))
        let rate = p.seconds > 0 ? Double(p.answered) / p.seconds : 0
        let text = String(format: "[%@] %3d%%  round %d/%d %@  %@ requests/s", bar, Int(p.fraction * 100), p.round, p.rounds,
                          name, ReportFormat.count(Int(rate.rounded())))
        FileHandleOutput.standardError("\r\u{1B}[2K" + text)
        drawn = true
    }

    func finish() {
        if terminal && drawn { FileHandleOutput.standardError("\r\u{1B}[2K") }
        drawn = false
    }
}
