import ArgumentParser
import Logging
import RingStormEngine

/// The options `serve` and `load` both take: how the engines run (backend, threads, worker processes)
/// and how the run is reported (the live line, the JSON file).
struct EngineOptions: ParsableArguments {
    @Option(help: "Engine backend: uring or epoll.")
    var backend: Backend = .uring

    @Option(name: [.customShort("t"), .long], parsing: .unconditional, help: "Engine threads, each with its own ring or epoll instance (load: connections and --connect-rate are split among them).")
    var threads: Int = 1

    @Option(parsing: .unconditional, help: "Worker processes, each with its own engines (serve: SO_REUSEPORT listeners on one port; load: connections and --connect-rate split among them); reports merged exactly. One process holds at most RLIMIT_NOFILE descriptors.")
    var processes: Int = 1

    @Option(parsing: .unconditional, help: "Live progress line every INTERVAL, e.g. 1s (0: none).")
    var reportInterval: String = "1s"

    @Option(help: "How much goes to standard error besides the report and errors: info (banner, live lines), notice (banner), warning (nothing but errors).")
    var logLevel: Logger.Level = .info

    @Option(name: .customLong("uring-features"), help: ArgumentHelp(
        "io_uring features beyond the basics, comma-separated: \(UringFeatures.named.map(\.name).joined(separator: ", ")); none; default (\(UringFeatures.defaults.names)). A feature the kernel refuses is dropped with a notice.",
        valueName: "LIST"))
    var uringFeatures: String = "default"

    @Option(help: "Write the final report as JSON to FILE (- for standard output; schema in Docs/report.md); checked before the run, replaced atomically at its end.")
    var json: String?

    /// `--uring-features`, checked before anything starts.
    func parsedUringFeatures() throws -> UringFeatures {
        switch UringFeatures.parse(uringFeatures) {
        case .success(let features): return features
        case .failure(let unknown):
            let known = UringFeatures.named.map(\.name).joined(separator: ", ")
            throw ValidationError("--uring-features: unknown feature '\(unknown.word)'; name some of \(known), or none, or default")
        }
    }
}
