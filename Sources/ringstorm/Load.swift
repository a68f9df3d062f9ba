import Foundation
import ArgumentParser
import Glibc
import RingStorm
import RingStormEngine

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open many connections to a server, send requests, and report every connection's fate by phase and outcome."
    )

    @Option(help: "Server to connect to, HOST:PORT.")
    var target: String = "127.0.0.1:7200"

    @Option(help: "Clients, each holding at most one connection.")
    var connections: Int = 100

    @Option(help: "Connections started per second, reconnects included (0: all at once).")
    var connectRate: Double = 0

    @Option(help: "How long to run, e.g. 10s, 2m.")
    var duration: String = "10s"

    @Option(help: "Wire protocol: ringstorm (REGISTER, then REQUEST/RESPONSE) or echo (raw bytes).")
    var `protocol`: LoadGenerator.WireProtocol = .ringstorm

    @Option(help: "Echo only: bytes sent first and awaited back before requests (the echo 'registration'), e.g. 75.")
    var firstMessage: String = "0"

    @Option(help: "Open loop: each connection sends one request every INTERVAL, e.g. 1s, 500ms.")
    var interval: String?

    @Flag(help: "Closed loop: the next request when a response arrives (the default without --interval).")
    var closedLoop = false

    @Option(help: "Closed loop: requests in flight per connection.")
    var pipeline: Int = 1

    @Option(help: "Request payload (ringstorm) or message (echo) size, e.g. 64, 4k.")
    var messageSize: String = "64"

    @Option(help: "Give up on a connect after this long (connect_timeout).")
    var connectTimeout: String = "5s"

    @Option(help: "A request or registration unanswered this long ends the connection (response_timeout).")
    var requestTimeout: String = "5s"

    @Flag(help: "Reconnect after a failure, backing off exponentially.")
    var reconnect = false

    @Option(help: "Reconnect backoff: first and longest wait, e.g. 100ms,5s.")
    var backoff: String = "100ms,5s"

    @Option(help: "Local addresses to connect from: ADDR[,ADDR...] or a range 127.0.0.2-127.0.0.50.")
    var source: String?

    @Option(help: "Engine backend: uring or epoll.")
    var backend: Backend = .uring

    @Option(help: "Engine threads; connections are split among them.")
    var threads: Int = 1

    @Option(help: "Write the report as JSON to FILE.")
    var json: String?

    @Option(help: "Write one JSON line per connection lifecycle to FILE.")
    var connectionsLog: String?

    @Option(help: "Live progress line every INTERVAL (0: none).")
    var reportInterval: String = "1s"

    func makeConfiguration() throws -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: try AddressArgument.parse(target, option: "--target"))
        c.connections = connections
        c.connectRate = connectRate
        c.durationNanoseconds = try nanoseconds(duration, "--duration")
        c.wireProtocol = `protocol`
        c.firstMessageSize = try bytes(firstMessage, "--first-message")
        if let interval {
            guard !closedLoop else { throw UsageError("--interval (open loop) and --closed-loop exclude each other; pick one") }
            c.pacing = .openLoop(intervalNanoseconds: try nanoseconds(interval, "--interval"))
        } else {
            c.pacing = .closedLoop(pipeline: pipeline)
        }
        c.messageSize = try bytes(messageSize, "--message-size")
        c.connectTimeoutNanoseconds = try nanoseconds(connectTimeout, "--connect-timeout")
        c.requestTimeoutNanoseconds = try nanoseconds(requestTimeout, "--request-timeout")
        c.reconnect = reconnect
        let parts = backoff.split(separator: ",").map(String.init)
        guard parts.count == 2 else { throw UsageError("--backoff '\(backoff)': write the first and longest wait, e.g. 100ms,5s") }
        c.reconnectMinimumNanoseconds = try nanoseconds(parts[0], "--backoff")
        c.reconnectMaximumNanoseconds = max(try nanoseconds(parts[1], "--backoff"), c.reconnectMinimumNanoseconds)
        if let source { c.sources = try SourceAddresses.parse(source) }
        c.backend = backend
        c.threads = threads
        c.connectionsLogPath = connectionsLog
        return c
    }

    func run() throws {
        TerminationSignals.block()
        let configuration = try makeConfiguration()
        let progressEvery = try nanoseconds(reportInterval, "--report-interval")
        let generator = LoadGenerator(configuration: configuration)
        do {
            try generator.start()
        } catch let error as LoadError {
            throw UsageError(error.description)
        } catch let error as EngineError {
            throw UsageError(error.description)
        }
        FileHandleOutput.standardError("ringstorm load: \(configuration.connections) connection\(configuration.connections == 1 ? "" : "s") to \(configuration.target), "
            + "\(configuration.wireProtocol), backend \(configuration.backend), \(configuration.threads) thread\(configuration.threads == 1 ? "" : "s"), "
            + "for \(DurationParsing.format(nanoseconds: configuration.durationNanoseconds)); Ctrl-C to stop early\n")
        let started = monotonicNanoseconds()
        var last = LoadProgress()
        var lastTime = started
        let tick = progressEvery > 0 ? min(progressEvery, 1_000_000_000) : 200_000_000
        var nextLine = started + progressEvery
        while !generator.isFinished {
            if TerminationSignals.wait(nanoseconds: min(tick, 200_000_000)) != nil {
                generator.stop()
                break
            }
            let now = monotonicNanoseconds()
            guard progressEvery > 0, now >= nextLine else { continue }
            nextLine += progressEvery
            let current = generator.progress
            FileHandleOutput.standardError(String(format: "[%6.1fs] ", Double(now - started) / 1e9)
                + current.line(since: last, seconds: Double(now - lastTime) / 1e9) + "\n")
            last = current
            lastTime = now
        }
        let report = generator.wait()
        FileHandleOutput.standardOutput(report.text + "\n")
        if let json {
            do {
                try report.json().write(to: URL(fileURLWithPath: json))
            } catch {
                throw UsageError("--json \(json): cannot write: \(error); name a writable file")
            }
        }
    }

    private func nanoseconds(_ text: String, _ option: String) throws -> Int64 {
        do { return try DurationParsing.nanoseconds(text) } catch { throw UsageError("\(option): \(error)") }
    }

    private func bytes(_ text: String, _ option: String) throws -> Int {
        do { return try DurationParsing.bytes(text) } catch { throw UsageError("\(option): \(error)") }
    }
}

extension LoadGenerator.WireProtocol: ExpressibleByArgument {}
