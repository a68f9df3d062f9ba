import Foundation
import ArgumentParser
import Glibc
import RingStorm
import RingStormEngine

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a server on the engine until SIGINT/SIGTERM, then print a summary."
    )

    enum WireProtocol: String, ExpressibleByArgument, CaseIterable { case echo }

    @Option(help: "Wire protocol: echo (raw bytes echoed back).")
    var `protocol`: WireProtocol = .echo

    @Option(help: "Address to listen on, HOST:PORT ([V6]:PORT for IPv6).")
    var listen: String = "127.0.0.1:7200"

    @Option(help: "Engine backend: uring or epoll.")
    var backend: Backend = .uring

    @Option(help: "Engine threads, each with its own ring or epoll instance and SO_REUSEPORT listener.")
    var threads: Int = 1

    @Option(help: "Seconds between live progress lines (0: none).")
    var reportInterval: Double = 1

    func validate() throws {
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be between 1 and 64, not \(threads)") }
        _ = try AddressArgument.parse(listen, option: "--listen")
    }

    func run() throws {
        TerminationSignals.block()
        var configuration = EchoServer.Configuration(listen: try AddressArgument.parse(listen, option: "--listen"))
        configuration.backend = backend
        configuration.threads = threads
        configuration.engine.maxConnections = DescriptorLimit.current
        let server: EchoServer
        do {
            server = try EchoServer(configuration: configuration)
        } catch let error as EngineError {
            throw UsageError(error.description)
        }
        FileHandleOutput.standardOutput("ringstorm serve: echo on \(server.address), backend \(backend), \(threads) thread\(threads == 1 ? "" : "s"); Ctrl-C to stop\n")
        let started = monotonicNanoseconds()
        var last = server.progress
        var lastTime = started
        let tick = Int64(max(reportInterval, 0.05) * 1e9)
        while TerminationSignals.wait(nanoseconds: tick) == nil {
            guard reportInterval > 0 else { continue }
            let now = monotonicNanoseconds()
            let current = server.progress
            let seconds = Double(now - lastTime) / 1e9
            let messages = Double(current.messages - last.messages) / seconds
            let syscalls = Double(current.engine.syscalls.total - last.engine.syscalls.total)
            let perMessage = current.messages > last.messages ? syscalls / Double(current.messages - last.messages) : 0
            FileHandleOutput.standardError(String(format: "[%6.1fs] open %d  accepted %d  msgs/s %.0f  syscalls/msg %.3f\n",
                                                  Double(now - started) / 1e9, current.openConnections, current.accepted, messages, perMessage))
            last = current
            lastTime = now
        }
        server.stop()
        let summary = server.wait()
        FileHandleOutput.standardOutput(EchoSummary.render(summary, seconds: Double(monotonicNanoseconds() - started) / 1e9))
    }
}

enum DescriptorLimit {
    /// The soft RLIMIT_NOFILE: no engine needs more slots than descriptors it can open.
    static var current: Int {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(min(limit.rlim_cur, 1 << 20))
    }
}
