import Foundation
import ArgumentParser
import Glibc
import RingStorm
import RingStormEngine

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open many connections to a server, send requests, and report every connection's fate by phase and outcome.",
        discussion: """
        Exit status: 0 the run went as asked; 1 a --threshold was crossed, no connection was established, \
        no response parsed (a protocol mismatch) or the report could not be written; 2 bad input, refused \
        before any connection starts. The report goes to standard output (to standard error with --json -), \
        the banner and live lines to standard error. See Docs/load.md.

        Examples:
          ringstorm load --target 127.0.0.1:7200 -c 1000 -d 10s
          ringstorm load -c 500 --interval 1s --reconnect -d 30s --json load.json
          ringstorm load -d 5s --threshold reset==0 --threshold 'p99<50ms'
          ringstorm load --protocol echo -c 100 -d 5s --json - | jq .requests
        """
    )

    @Option(help: "Server to connect to, HOST:PORT (numeric), or for --protocol http also http://HOST:PORT/PATH.")
    var target: String = "127.0.0.1:7200"

    @Option(name: [.customShort("c"), .long], parsing: .unconditional, help: "Clients, each holding at most one connection.")
    var connections: Int = 100

    @Option(parsing: .unconditional, help: "Connections started per second, reconnects included (0: all at once).")
    var connectRate: Double = 0

    @Option(name: [.customShort("d"), .long], parsing: .unconditional, help: "How long to run, e.g. 10s, 2m.")
    var duration: String = "10s"

    @Option(help: "Wire protocol: ringstorm (REGISTER, then REQUEST/RESPONSE), echo (bytes echoed), raw (your own: --message and a response framing) or http (HTTP/1.1 keep-alive); see Docs/protocols.md.")
    var `protocol`: LoadGenerator.WireProtocol = .ringstorm

    @Option(parsing: .unconditional, help: "Echo: bytes sent first and awaited back before requests (the echo 'registration'), e.g. 75. Raw: the registration itself, TEXT with escapes (\\r\\n, \\xHH) and placeholders ({client}, {seq}, {time_us}) or @FILE.")
    var firstMessage: String?

    @Option(parsing: .unconditional, help: "Raw: each request, TEXT with escapes (\\r\\n, \\t, \\0, \\\\, \\xHH) and placeholders ({client}, {seq}, {time_us}) or @FILE.")
    var message: String?

    @Option(parsing: .unconditional, help: "Raw: every response is exactly N bytes.")
    var responseSize: String?

    @Option(parsing: .unconditional, help: "Raw: a response ends with these bytes (escapes allowed), e.g. '\\r\\n'.")
    var responseDelimiter: String?

    @Option(parsing: .unconditional, help: "Raw: a response starts with a length field WIDTH bytes wide (1, 2, 4 or 8).")
    var responseLengthPrefix: Int?

    @Option(parsing: .unconditional, help: "Raw: the length field's byte order, big or little.")
    var responseLengthEndian: String = "big"

    @Option(parsing: .unconditional, help: "Raw: bytes before the length field in the response header.")
    var responseLengthOffset: Int = 0

    @Flag(help: "Raw: the length counts the whole response (header included), not only the bytes after the field.")
    var responseLengthIncludesHeader = false

    @Option(parsing: .unconditional, help: "Raw: the first message's answer is exactly N bytes (default: framed like every response).")
    var firstResponseSize: String?

    @Option(parsing: .unconditional, help: "Raw: the first message's answer ends with these bytes.")
    var firstResponseDelimiter: String?

    @Option(parsing: .unconditional, help: "Raw: the first message's answer starts with a length field WIDTH bytes wide (with the --response-length-endian/offset/includes-header of responses).")
    var firstResponseLengthPrefix: Int?

    @Option(parsing: .unconditional, help: "HTTP: the request method.")
    var method: String?

    @Option(parsing: .unconditional, help: "HTTP: the request path (default / or the path of an http:// --target).")
    var path: String?

    @Option(parsing: .unconditionalSingleValue, help: "HTTP: a request header 'Name: value' (repeatable), or @FILE with one header per line.")
    var header: [String] = []

    @Option(parsing: .unconditional, help: "HTTP: the request body, TEXT with escapes or @FILE (sent with its Content-Length).")
    var body: String?

    @Option(parsing: .unconditional, help: "Raw and HTTP: the largest response (HTTP: response body) accepted (larger: protocol_error), e.g. 64k.")
    var maxResponseSize: String = "1m"

    @Option(parsing: .unconditional, help: "Open loop: each connection sends one request every INTERVAL, e.g. 1s, 500ms; the connections' sends are spread evenly over it.")
    var interval: String?

    @Option(parsing: .unconditional, help: "Open loop: stop sleeping this long before a send is due and spin on the clock until it is, e.g. 50us (0: off; at most 1ms). Sends leave on time for up to this much CPU per send.")
    var sendSpin: String?

    @Option(parsing: .unconditional, help: "Open loop at R requests per second over all connections together, evenly spaced (as wrk2 -R, oha -q); excludes --interval.")
    var rate: Double?

    @Flag(help: "Print the request latency's whole HDR percentile spectrum after the report (as wrk2 --latency).")
    var latency = false

    @Option(help: ArgumentHelp("Write the request latency's percentile distribution as .hgrm text (HdrHistogram's format, milliseconds) to FILE, for HdrHistogram plotters (- for standard output).", valueName: "file"))
    var hgrm: String?

    @Flag(help: "Closed loop: the next request when a response arrives (the default without --interval).")
    var closedLoop = false

    @Option(parsing: .unconditional, help: "Closed loop: requests in flight per connection (default 1).")
    var pipeline: Int?

    @Option(parsing: .unconditional, help: "Request payload (ringstorm) or message (echo) size, e.g. 64, 4k.")
    var messageSize: String = "64"

    @Option(parsing: .unconditional, help: "Give up on a connect after this long (connect_timeout).")
    var connectTimeout: String = "5s"

    @Option(parsing: .unconditional, help: "A request or registration unanswered this long ends the connection (response_timeout).")
    var requestTimeout: String = "5s"

    @Flag(help: "Reconnect after a failure, backing off exponentially.")
    var reconnect = false

    @Option(name: .customLong("backoff"), help: "Reconnect backoff: first and longest wait, and optionally a jitter (each wait spread up to that fraction longer), e.g. 100ms,5s or 100ms,5s,0.5 (default 100ms,5s).")
    var userBackoff: String?
    private var backoff: String { userBackoff ?? "100ms,5s" }

    @Option(help: "Local addresses to connect from: ADDR[,ADDR...] or a range 127.0.0.2-127.0.0.50.")
    var source: String?

    @Option(help: "Who picks source ports: assign (the generator binds each connection to a port of its worker's own slice: no kernel search), range (the kernel searches only the worker's slice, IP_LOCAL_PORT_RANGE, kernel 6.3+) or kernel (the kernel searches the whole range); see Docs/load.md, Ramping.")
    var localPorts: LoadGenerator.LocalPorts = .range

    @Option(help: "Write one JSON line per connection lifecycle to FILE (- for standard output).")
    var connectionsLog: String?

    @Option(name: .customLong("threshold"), help: ArgumentHelp(
        "Fail the run (exit status 1) unless METRIC OP VALUE holds, e.g. reset==0, 'answered>=99.9%', p99<50ms, connect.refused==0, established==connections; repeatable. See Docs/load.md.",
        valueName: "expr"))
    var thresholds: [String] = []

    @Flag(help: "Connect and send nothing, like telnet: no registration, no requests; count what the server does (FIN: closed, RST: reset) in phase idle.")
    var silent = false

    @Option(parsing: .unconditional, help: "ringstorm: bytes of the REGISTER frame, padded with registration data the server ignores, e.g. 75 (default 13: the bare frame).")
    var registrationSize: String = "13"

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics while the run goes on (port 0: the kernel picks one; see Docs/metrics.md).", valueName: "host:port"))
    var metrics: String?

    @Option(help: ArgumentHelp("Run shard I of N (I from 0, as JOB_COMPLETION_INDEX): this run's share of every total (connections, --connect-rate, client numbers, --source addresses), as each of N hosts runs one; or auto: I from JOB_COMPLETION_INDEX, N from --shard-count or RINGSTORM_SHARD_COUNT. Merge the reports with ringstorm merge (Docs/merge.md).", valueName: "I/N|auto"))
    var shard: String?

    @Option(parsing: .unconditional, help: "--shard auto: how many shards (default: the environment's RINGSTORM_SHARD_COUNT).")
    var shardCount: Int?

    @Option(help: ArgumentHelp("Start at this wall-clock time, RFC 3339 (2026-12-02T07:00:00Z) or Unix seconds, so shards on many hosts start together; a start later than --start-tolerance past it is recorded in the report.", valueName: "time"))
    var startAt: String?

    @Option(parsing: .unconditional, help: "How late past --start-at a start may be before the report says so (start_late_by_ms).")
    var startTolerance: String = "100ms"

    @Flag(help: "No live view (the status block or the per-interval lines); the report at the end only.")
    var quiet = false

    @OptionGroup var options: EngineOptions

    func makeConfiguration() throws -> LoadGenerator.Configuration {
        let (address, urlPath) = try parseTarget()
        var c = LoadGenerator.Configuration(target: address)
        c.connections = connections
        c.connectRate = connectRate
        c.durationNanoseconds = try nanoseconds(duration, "--duration")
        c.wireProtocol = `protocol`
        if `protocol` == .http {
            var http = HTTPOptions()
            if let method { http.method = method }
            if let path = path ?? urlPath { http.path = path }
            http.headers = try header.flatMap { h -> [String] in
                guard h.hasPrefix("@") else { return [h] }
                // A file of headers, one per line.
                let text = String(decoding: try rawBytes(h, "--header"), as: UTF8.self)
                return text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" })
                    .map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "\r")) }.filter { !$0.isEmpty }
            }
            if let body { http.body = try rawBytes(body, "--body") }
            http.maxBodySize = try bytes(maxResponseSize, "--max-response-size")
            c.http = http
        } else if method != nil || path != nil || !header.isEmpty || body != nil {
            throw UsageError(LoadError.httpOptionsNotFor(`protocol`).commandLineText)
        }
        if `protocol` == .raw {
            c.raw = try rawOptions()
        } else {
            c.firstMessageSize = try bytes(firstMessage ?? "0", "--first-message")
            guard message == nil && responseSize == nil && responseDelimiter == nil && responseLengthPrefix == nil
                && firstResponseSize == nil && firstResponseDelimiter == nil && firstResponseLengthPrefix == nil else {
                throw UsageError(LoadError.rawOptionsNotFor(`protocol`).commandLineText)
            }
        }
        if silent {
            guard interval == nil && rate == nil && !closedLoop else { throw UsageError("--silent clients send nothing; drop --interval/--rate/--closed-loop") }
            c.pacing = .silent
        } else if let rate {
            guard interval == nil else { throw UsageError(Self.rateAndIntervalText) }
            guard !closedLoop else { throw UsageError("--rate (open loop) and --closed-loop exclude each other; pick one") }
            if let pipeline {
                throw UsageError("--pipeline \(pipeline) is for the closed loop; with --rate the connections send R requests per second together. Drop one of them")
            }
            c.pacing = .rate(requestsPerSecond: rate, connections: c.connections)
        } else if let interval {
            guard !closedLoop else { throw UsageError("--interval (open loop) and --closed-loop exclude each other; pick one") }
            if let pipeline {
                throw UsageError("--pipeline \(pipeline) is for the closed loop; with --interval each connection sends one request every interval. Drop one of them")
            }
            c.pacing = .openLoop(intervalNanoseconds: try nanoseconds(interval, "--interval"))
        } else {
            c.pacing = .closedLoop(pipeline: pipeline ?? 1)
        }
        if let sendSpin {
            let spin = try nanoseconds(sendSpin, "--send-spin")
            guard spin >= 0 && spin <= 1_000_000 else {
                throw UsageError("--send-spin must be between 0 and 1ms, not \(sendSpin): it is spent spinning before every send")
            }
            c.sendSpinNanoseconds = spin
        }
        c.messageSize = try bytes(messageSize, "--message-size")
        c.connectTimeoutNanoseconds = try nanoseconds(connectTimeout, "--connect-timeout")
        c.requestTimeoutNanoseconds = try nanoseconds(requestTimeout, "--request-timeout")
        c.reconnect = reconnect
        let parts = backoff.split(separator: ",").map(String.init)
        guard parts.count == 2 || parts.count == 3 else {
            throw UsageError("--backoff '\(backoff)': write the first and longest wait, e.g. 100ms,5s, and optionally a jitter, 100ms,5s,0.5")
        }
        c.reconnectMinimumNanoseconds = try nanoseconds(parts[0], "--backoff")
        c.reconnectMaximumNanoseconds = try nanoseconds(parts[1], "--backoff")
        guard c.reconnectMaximumNanoseconds >= c.reconnectMinimumNanoseconds else {
            throw UsageError("--backoff '\(backoff)': the longest wait \(parts[1]) is shorter than the first \(parts[0]); write the first wait first, e.g. \(parts[1]),\(parts[0])")
        }
        if userBackoff != nil && !reconnect {
            throw UsageError("--backoff is the wait between reconnects; add --reconnect or drop --backoff")
        }
        if parts.count == 3 {
            guard let jitter = Double(parts[2]), jitter >= 0, jitter <= 10 else {
                throw UsageError("--backoff '\(backoff)': the jitter '\(parts[2])' must be a fraction from 0 to 10, e.g. 0.5")
            }
            c.reconnectJitter = jitter
        }
        if let source {
            do { c.sources = try SourceAddresses.parse(source) } catch { throw UsageError(error.commandLineText) }
        }
        c.localPorts = localPorts
        c.backend = options.backend
        c.threads = options.threads
        c.engine.uringFeatures = try options.parsedUringFeatures()
        c.connectionsLogPath = connectionsLog
        if connectionsLog == "-" && options.processes > 1 {
            throw UsageError("--connections-log - (standard output) works with one process; with --processes name a file, which the workers share")
        }
        if hgrm == "-" && (options.json == "-" || connectionsLog == "-") {
            throw UsageError("--hgrm - and \(options.json == "-" ? "--json -" : "--connections-log -") both write to standard output; send one of them to a file")
        }
        if connectionsLog == "-" && options.json == "-" {
            throw UsageError("--connections-log - and --json - both write to standard output; send one of them to a file")
        }
        c.registrationSize = try bytes(registrationSize, "--registration-size")
        let every = try nanoseconds(options.reportInterval, "--report-interval")
        if every != 0 && every < LiveView.minimumIntervalNanoseconds {
            throw UsageError("--report-interval \(options.reportInterval) is shorter than the generator can keep (10ms): give 10ms or more, or 0 for no live view")
        }
        c.reportIntervalNanoseconds = every > 0 ? every : 1_000_000_000
        if let startAt {
            guard let at = StartTime.parse(startAt) else {
                throw UsageError("--start-at '\(startAt)': give an RFC 3339 time (2026-12-02T07:00:00Z, 2026-12-02T08:00:00.5+01:00) or Unix seconds (1796281200)")
            }
            c.startAtNanoseconds = at
            c.startToleranceNanoseconds = try nanoseconds(startTolerance, "--start-tolerance")
        }
        if shardCount != nil && shard != "auto" {
            throw UsageError("--shard-count is the count for --shard auto; with --shard I/N drop it")
        }
        if let shard {
            switch Self.shardResult(shard, count: shardCount, of: c) {
            case .success(let sharded): c = sharded
            case .failure(let problem): throw UsageError(Self.text(of: problem, shard))
            }
        }
        return c
    }

    /// `--shard`'s value applied to `c` (a Result: typed throws through a `do` here crash Swift 6.3's
    /// ownership checker).
    static func shardResult(_ text: String, count: Int?, of c: LoadGenerator.Configuration) -> Result<LoadGenerator.Configuration, Shard.Problem> {
        Result { () throws(Shard.Problem) -> LoadGenerator.Configuration in
            let s = text == "auto" ? try Shard.automatic(count: count, environment: ProcessInfo.processInfo.environment)
                : try Shard(parsing: text)
            return try c.sharded(s)
        }
    }

    /// How a shard problem reads, with the flags.
    static func text(of problem: Shard.Problem, _ given: String) -> String {
        switch problem {
        case .notIndexOfCount(let text):
            return "--shard '\(text)': write I/N, this shard's number from 0 and the count, e.g. 2/3, or auto"
        case .outOfRange(let index, let count):
            return count < 1 ? "--shard: the count must be at least 1, not \(count)"
                : "--shard \(given): shard \(index) is outside 0...\(count - 1); number the shards from 0 to \(count - 1), as JOB_COMPLETION_INDEX does"
        case .indexMissing(let value):
            return value == nil ? "--shard auto reads the index from JOB_COMPLETION_INDEX, which is not set (a Kubernetes Indexed Job sets it); give --shard I/N instead"
                : "--shard auto: JOB_COMPLETION_INDEX is '\(value!)', not a number; give --shard I/N instead"
        case .countMissing(let value):
            return value == nil ? "--shard auto needs the count: give --shard-count N or set RINGSTORM_SHARD_COUNT"
                : "--shard auto: RINGSTORM_SHARD_COUNT is '\(value!)', not a number; give --shard-count N"
        case .moreShardsThanConnections(let shards, let connections):
            return "--shard \(given): \(shards) shards for \(connections) connections would leave a shard with none; give --connections at least \(shards)"
        }
    }

    /// `--target`: `HOST:PORT`, or `http://HOST[:PORT][/PATH]` (numeric hosts only: no name is resolved).
    func parseTarget() throws -> (SocketAddress, String?) {
        guard target.lowercased().hasPrefix("http://") || target.lowercased().hasPrefix("https://") else {
            return (try AddressArgument.parse(target, option: "--target"), nil)
        }
        guard target.lowercased().hasPrefix("http://") else { throw UsageError("--target \(target): https is not spoken; use http://") }
        guard `protocol` == .http else { throw UsageError("--target \(target): an http:// target needs --protocol http") }
        let rest = target.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var hostPort = String(rest[..<slash])
        let path = slash < rest.endIndex ? String(rest[slash...]) : "/"
        let hasPort = hostPort.hasPrefix("[") ? hostPort.contains("]:") : hostPort.contains(":")
        if !hasPort { hostPort += ":80" }
        // The same numeric-address rules as HOST:PORT (a name is refused, not resolved).
        return (try AddressArgument.parse(hostPort, option: "--target \(target): the host"), path)
    }

    /// `--protocol raw`'s messages and framings.
    func rawOptions() throws -> RawOptions {
        var raw = RawOptions()
        if let firstMessage { raw.firstMessage = try rawBytes(firstMessage, "--first-message") }
        if let message { raw.message = try rawBytes(message, "--message") }
        raw.maxResponseSize = try bytes(maxResponseSize, "--max-response-size")
        let endian = responseLengthEndian.lowercased()
        guard endian == "big" || endian == "little" else {
            throw UsageError("--response-length-endian '\(responseLengthEndian)': write big or little")
        }
        func framing(size: String?, delimiter: String?, prefix: Int?, first: Bool) throws -> RawFraming? {
            let given = [size != nil, delimiter != nil, prefix != nil].filter { $0 }.count
            guard given <= 1 else { throw UsageError(LoadError.rawFramingConflict(first: first).commandLineText) }
            let name = first ? "--first-response" : "--response"
            if let size { return .size(try bytes(size, name + "-size")) }
            if let delimiter { return .delimiter(try rawBytes(delimiter, name + "-delimiter", files: false)) }
            if let prefix {
                return .lengthPrefix(RawLengthPrefix(width: prefix, bigEndian: endian == "big", offset: responseLengthOffset,
                                                     includesHeader: responseLengthIncludesHeader))
            }
            return nil
        }
        raw.response = try framing(size: responseSize, delimiter: responseDelimiter, prefix: responseLengthPrefix, first: false)
        raw.firstResponse = try framing(size: firstResponseSize, delimiter: firstResponseDelimiter,
                                        prefix: firstResponseLengthPrefix, first: true)
        return raw
    }

    /// Text with escapes, or `@FILE` for its bytes.
    func rawBytes(_ text: String, _ option: String, files: Bool = true) throws -> [UInt8] {
        if files && text.hasPrefix("@") {
            let path = String(text.dropFirst())
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UsageError("\(option) @\(path): cannot read the file; name a readable file (write \\x40 for a literal @)")
            }
            return [UInt8](data)
        }
        do { return try RawBytes.parse(text) } catch { throw UsageError("\(option) '\(text)': \(error)") }
    }

    func run() throws {
        TerminationSignals.block()
        Diagnostics.setLevel(options.logLevel)
        if let worker = try inheritedWorker(LoadGenerator.Configuration.self) {
            return try work(worker.assignment, channel: worker.channel)
        }
        guard (1...LoadBudget.maximumProcesses).contains(options.processes) else {
            throw UsageError("--processes must be between 1 and \(LoadBudget.maximumProcesses), not \(options.processes)")
        }
        let configuration = try makeConfiguration()
        let progressEvery = try nanoseconds(options.reportInterval, "--report-interval")
        let thresholds = try parsedThresholds()
        // Every output is checked before the first connection: a bad path fails now, not after the run.
        let json = try options.json.map { try OutputFile(option: "--json", path: $0) }
        let hgrmFile = try hgrm.map { try OutputFile(option: "--hgrm", path: $0) }
        if options.processes > 1 {
            return try runProcesses(configuration, progressEvery: progressEvery, json: json, hgrm: hgrmFile, thresholds: thresholds)
        }
        let generator = LoadGenerator(configuration: configuration)
        let endpoint = try metrics.map { text in
            try MetricsEndpoint(text) { endpoint in
                let snapshot = generator.snapshot
                endpoint.load(snapshot.report, open: snapshot.open, configured: configuration.connections)
            }
        }
        defer { endpoint?.stop() }
        _ = try start(generator)
        Diagnostics.notice(banner(configuration) + (endpoint.map { "  " + $0.bannerText + "\n" } ?? ""))
        var live = liveView(configuration, progressEvery: progressEvery)
        let tick = min(progressEvery > 0 ? progressEvery : 200_000_000, 100_000_000)
        while !generator.isFinished {
            if TerminationSignals.wait(nanoseconds: tick) != nil {
                generator.stop()
                break
            }
            if var view = live {
                let text = view.render(generator.completedIntervals(after: view.shownUpTo))
                live = view
                if !text.isEmpty { Diagnostics.info(text) }
            }
        }
        let (report, histograms) = generator.waitWithHistograms()
        try finish(report, text: report.text + "\n" + distributionText(histograms), configuration: configuration, json: json,
                   hgrm: hgrmFile, histograms: histograms, thresholds: thresholds)
    }

    func parsedThresholds() throws -> [Threshold] {
        try thresholds.map { text in
            do { return try Threshold(parsing: text) } catch { throw UsageError("--threshold \(error)") }
        }
    }

    /// Prints the report (to standard error when the JSON goes to standard output), writes the JSON,
    /// and throws the run's failures: the JSON not written, thresholds crossed, nothing established.
    private func finish(_ report: LoadReport, text: String, configuration: LoadGenerator.Configuration, json: OutputFile?,
                        hgrm: OutputFile?, histograms: LoadWorkerReport.Histograms,
                        thresholds: [Threshold], failures: [String] = []) throws {
        // Standard output carrying machine output (the JSON, the connection log, the .hgrm) takes nothing else.
        var lines = failures + deliverReport(text: text, json: json, standardOutputTaken: connectionsLog == "-" || hgrm?.isStandardOutput == true) {
            try report.json()
        }
        if let hgrm {
            do { try hgrm.write(Data(histograms.request.percentileDistribution().utf8)) } catch { lines.append("\(error)") }
        }
        let verdict = LoadVerdict(report: report, configuration: configuration, thresholds: thresholds)
        for result in verdict.results where result.passed {
            Diagnostics.info("threshold \(result.threshold.expression) ok: was \(result.actual)\n")
        }
        lines += verdict.crossed.map { "threshold \($0.threshold.expression) crossed: was \($0.actual)" }
        if let failure = verdict.failure { lines.append(failure.commandLineText) }
        if !lines.isEmpty { throw RunFailure(lines) }
    }

    /// `--latency`: the request latency's whole percentile spectrum, as wrk2 prints it; empty without it.
    private func distributionText(_ histograms: LoadWorkerReport.Histograms) -> String {
        guard latency else { return "" }
        guard !histograms.request.isEmpty else { return "latency distribution: no request was answered\n" }
        return "latency distribution (request: intended send to response, HdrHistogram, values in ms)\n"
            + histograms.request.percentileDistribution()
    }

    static let rateAndIntervalText = "--rate (R requests per second over all connections) and --interval (one request per connection every INTERVAL) both set the open loop's pace; pick one"

    private func start(_ generator: LoadGenerator) throws -> LoadGenerator {
        do {
            try generator.start()
        } catch let error as LoadError {
            throw UsageError(error.commandLineText)
        } catch let error as EngineError {
            throw UsageError(error.commandLineDescription)
        }
        return generator
    }

    /// The live view, unless `--quiet` or `--report-interval 0`.
    private func liveView(_ c: LoadGenerator.Configuration, progressEvery: Int64) -> LiveView? {
        guard !quiet, progressEvery > 0 else { return nil }
        return LiveView(intervalNanoseconds: c.reportIntervalNanoseconds,
                        startMs: (c.startAtNanoseconds ?? wallClockNanoseconds()) / 1_000_000,
                        durationNanoseconds: c.durationNanoseconds, terminal: LiveView.standardErrorIsTerminal)
    }

    private func banner(_ c: LoadGenerator.Configuration) -> String {
        "ringstorm load: \(c.connections) connection\(c.connections == 1 ? "" : "s") to \(c.target), "
            + "\(c.wireProtocol)\(c.pacing == .silent ? " (silent)" : ""), backend \(c.backend), "
            + (options.processes > 1 ? "\(options.processes) processes × " : "")
            + "\(c.threads) thread\(c.threads == 1 ? "" : "s"), "
            + "for \(DurationParsing.format(nanoseconds: c.durationNanoseconds))"
            + (c.shard.map { ", shard \($0)" } ?? "")
            + (c.startAtNanoseconds.map { ", starting at \(Provenance.rfc3339(milliseconds: $0 / 1_000_000))" } ?? "")
            + "; Ctrl-C to stop early\n"
    }

    // MARK: --processes N

    /// A worker process: runs its share (the assignment its parent serialized), sends progress and its
    /// mergeable report to the parent.
    private func work(_ assignment: WorkerAssignment<LoadGenerator.Configuration>, channel: WorkerChannel) throws {
        let generator = try start(LoadGenerator(configuration: assignment.configuration))
        channel.ready()
        // At least once a second: a failed write tells it the parent is gone.
        let every = assignment.progressIntervalNanoseconds > 0 ? min(assignment.progressIntervalNanoseconds, 1_000_000_000) : 1_000_000_000
        while !generator.isFinished {
            if TerminationSignals.wait(nanoseconds: every) != nil {
                generator.stop()
                break
            }
            // Progress carries only the recent intervals (the parent's live view needs no more; the final
            // report carries them all), so a long run's messages do not grow.
            let recent = wallClockNanoseconds() / 1_000_000 - 2_000 - assignment.configuration.reportIntervalNanoseconds / 1_000_000
            if !channel.progress(generator.snapshot(intervalsSinceMs: recent)) {
                generator.stop()  // the parent is gone
                break
            }
        }
        let report = generator.waitMergeable()
        channel.final(LoadWorkerSnapshot(report: report, open: 0, finished: true))
    }

    /// The parent of `--processes N`: checks the budget for N processes, starts N workers (this binary's
    /// `load`, each with its share as a serialized `WorkerAssignment`: see `WorkSplit`), prints a
    /// live line summed over them, forwards SIGINT/SIGTERM, merges their reports exactly (counts summed,
    /// histograms added) and reports a worker that died.
    private func runProcesses(_ configuration: LoadGenerator.Configuration, progressEvery: Int64, json: OutputFile?,
                              hgrm: OutputFile?, thresholds: [Threshold]) throws {
        let kernelAtStart = KernelCounters.read()
        do {
            try LoadGenerator(configuration: configuration).validate(processes: options.processes)
        } catch {
            throw UsageError(error.commandLineText)
        }
        if let connectionsLog, connectionsLog != "-" {
            // Truncated once here (opened as the workers open it, and closed at once); the workers append.
            do { _ = try ConnectionLogFile(path: connectionsLog, truncate: true) } catch { throw UsageError(error.commandLineText) }
        }
        let assignments = WorkSplit(configuration, parts: options.processes).shares.map { share in
            var part = configuration.narrowed(to: share)
            part.truncateConnectionsLog = false
            return WorkerAssignment(part, progressIntervalNanoseconds: progressEvery)
        }
        // The workers' latest snapshots, merged about once a second for --metrics.
        let merged = Locked<(report: LoadWorkerReport, open: Int)>((LoadWorkerReport(backend: configuration.backend), 0))
        let endpoint = try metrics.map { text in
            try MetricsEndpoint(text) { endpoint in
                let (report, open) = merged.withLock { $0 }
                endpoint.load(report, open: open, configured: configuration.connections)
            }
        }
        defer { endpoint?.stop() }
        var nextMerge = monotonicNanoseconds()
        let workers: WorkerProcesses<LoadWorkerSnapshot> = try startedWorkers("load", assignments)
        Diagnostics.notice(banner(configuration) + (endpoint.map { "  " + $0.bannerText + "\n" } ?? ""))

        let started = monotonicNanoseconds()
        // The workers end by themselves; past this, they are stopped.
        let waitForStart = max(0, (configuration.startAtNanoseconds ?? 0) - wallClockNanoseconds())
        let giveUp = started + waitForStart + configuration.durationNanoseconds + configuration.drainNanoseconds + 15_000_000_000
        var live = liveView(configuration, progressEvery: progressEvery)
        var failure: WorkerFailure?
        var stopping = false
        while !workers.allEnded {
            if let f = workers.failure, failure == nil {
                failure = f
                workers.signalAll(SIGTERM)
            }
            if !stopping && TerminationSignals.wait(nanoseconds: 0) != nil {
                stopping = true
                workers.signalAll(SIGTERM)
            }
            if monotonicNanoseconds() > giveUp {
                workers.stop(graceNanoseconds: 5_000_000_000)
                break
            }
            workers.pump(timeoutNanoseconds: 100_000_000)
            let now = monotonicNanoseconds()
            if endpoint != nil, now >= nextMerge {
                nextMerge = now + 1_000_000_000
                let latest = workers.latest.compactMap { $0 }
                // Metrics need the counts, not the series (progress carries only its recent part anyway).
                if let report = LoadWorkerReport.merged(latest.map { var r = $0.report; r.intervals = []; return r }) {
                    merged.withLock { $0 = (report, latest.reduce(0) { $0 + $1.open }) }
                }
            }
            if var view = live {
                let series = workers.latest.map { $0.map { ($0.report.intervals, $0.finished) } }
                let text = view.render(LoadSeries.completed(series, after: view.shownUpTo))
                live = view
                if !text.isEmpty { Diagnostics.info(text) }
            }
        }
        failure = failure ?? workers.failure
        // A worker that died counts with its last progress report: what it did up to then is not lost.
        let reports = workers.mergeable
        guard let merged = LoadWorkerReport.merged(reports.map(\.report)) else {
            throw RunFailure(failure?.description ?? "no worker process sent a report")
        }
        var report = merged.report
        report.provenance = configuration.provenance(of: merged)
        report.kernel = KernelCounters.read() - kernelAtStart
        report.failedWorkers = workers.failedWorkers
        report.complete = report.failedWorkers.isEmpty && failure == nil
        var text = report.text + "\n"
        text += "processes    \(options.processes), merged exactly (counts summed, histograms added)\n"
        if !report.complete {
            text += "incomplete   \(workers.finals.count) of \(options.processes) final worker reports\n"
            for failed in report.failedWorkers { text += "failed       \(failed.text)\n" }
        }
        text += distributionText(merged.latency)
        try finish(report, text: text, configuration: configuration, json: json, hgrm: hgrm, histograms: merged.latency, thresholds: thresholds,
                   failures: failure.map { [$0.description] } ?? [])
    }

}

extension LoadGenerator.WireProtocol: ExpressibleByArgument {}
extension LoadGenerator.LocalPorts: ExpressibleByArgument {}

extension LoadError {
    /// The problem in `ringstorm load`'s terms: its option names, the numbers and the fix.
    var commandLineText: String {
        func count(_ value: Int) -> String { ReportFormat.count(value) }
        switch self {
        case .connections(let n): return "--connections must be at least 1, not \(n)"
        case .threads(let n, let maximum): return "--threads must be between 1 and \(maximum), not \(n)"
        case .processes(let n, let maximum): return "--processes must be between 1 and \(maximum), not \(n)"
        case .processesExceedConnections(let p, let c): return "--processes \(p) is more than --connections \(c); use at most \(c)"
        case .firstClientNegative: return "the first client number cannot be negative"
        case .targetWithoutPort(let target): return "--target \(target) has no port; write e.g. 127.0.0.1:7200"
        case .durationNotPositive: return "--duration must be more than 0"
        case .connectRateNegative: return "--connect-rate cannot be negative"
        case .requestTimeoutNotPositive: return "--request-timeout must be more than 0"
        case .reconnectJitter(let j, let maximum):
            return "--backoff jitter must be between 0 and \(Int(maximum)) (a fraction of the wait), not \(j)"
        case .firstMessageNegative: return "--first-message cannot be negative"
        case .intervalNotPositive: return "--interval must be more than 0"
        case .rateNotPositive(let r): return "--rate must be more than 0 requests per second, not \(r); e.g. --rate 1000"
        case .pipeline(let n, let maximum): return "--pipeline must be between 1 and \(maximum), not \(n)"
        case .sourceFamily(let source, let target):
            return "--source \(source.host) and --target \(target) are of different address families"
        case .messageSizeTooSmall(let n, let minimum, let p):
            return p == .echo ? "--message-size must be at least \(minimum) byte for the echo protocol"
                : "--message-size must be at least \(minimum) bytes for the \(p) protocol, not \(n)"
        case .messageSizeTooLarge(let n, let frame, let most):
            return "--message-size \(n) does not fit a \(frame)-byte frame; the most is \(most)"
        case .firstMessageNotFor(let p):
            if p == .http { return "--first-message is not for --protocol http (HTTP has no registration); --protocol raw sends one of your own" }
            return "--first-message is for --protocol echo and raw; ringstorm clients send REGISTER first (pad it with --registration-size)"
        case .registrationSize(let n, let minimum, let maximum):
            return "--registration-size \(n) must be between \(minimum) (a bare REGISTER) and \(maximum) bytes"
        case .registrationSizeNotFor:
            return "--registration-size is for --protocol ringstorm; echo clients send --first-message BYTES, raw clients --first-message TEXT"
        case .rawMessageMissing: return "--protocol raw needs --message TEXT|@FILE: the bytes of each request"
        case .rawFirstMessageEmpty: return "--first-message is empty; give the registration's bytes or drop the option"
        case .rawResponseFramingMissing:
            return "--protocol raw needs to know where a response ends: --response-size N, --response-delimiter BYTES or --response-length-prefix WIDTH"
        case .rawFramingConflict(let first):
            let p = first ? "--first-response" : "--response"
            return "\(p)-size, \(p)-delimiter and \(p)-length-prefix exclude each other; pick one"
        case .rawResponseSize(let n, let maximum, let first):
            return "--\(first ? "first-" : "")response-size \(n) must be between 1 and --max-response-size \(maximum)"
        case .rawDelimiterEmpty(let first): return "--\(first ? "first-" : "")response-delimiter cannot be empty"
        case .rawLengthPrefixWidth(let n, let first):
            return "--\(first ? "first-" : "")response-length-prefix must be 1, 2, 4 or 8 (bytes), not \(n)"
        case .rawLengthPrefixOffset(let n, let maximum, _):
            return "--response-length-offset must be between 0 and \(maximum) (the field must fit --max-response-size), not \(n)"
        case .rawMaxResponseSize(let n): return "--max-response-size must be at least 1 byte, not \(n)"
        case .rawFirstResponseWithoutFirstMessage:
            return "--first-response-size/-delimiter/-length-prefix frame the answer to --first-message; give --first-message too"
        case .rawOptionsNotFor(let p):
            return "--message and the --response-*/--first-response-* framings are for --protocol raw, not \(p)"
        case .httpMethod(let m): return "--method '\(m)' is not an HTTP method token; write e.g. GET or POST"
        case .httpPath(let p): return "--path '\(p)' must start with / and hold no spaces or control bytes (percent-encode them)"
        case .httpHeader(let h): return "--header '\(h)' must be 'Name: value' on one line"
        case .httpHeaderSetByLoad(let h): return "--header '\(h)': the load generator frames the body itself (Content-Length from --body); drop it"
        case .httpLimits(let h, let b): return "the HTTP limits must be at least 64 header bytes and 0 body bytes, not \(h) and \(b)"
        case .httpOptionsNotFor(let p): return "--method, --path, --header and --body are for --protocol http, not \(p)"
        case .descriptors(let s):
            let limits = "(RLIMIT_NOFILE \(count(s.limit)) minus \(s.margin) kept back)"
            if s.processes == 1 {
                return "--connections \(count(s.connections)) needs \(count(s.connections)) descriptors but one process may open "
                    + "\(count(s.usable)) \(limits): add --processes \(s.processesNeeded) or lower --connections to \(count(s.usable))"
            }
            return "--connections \(count(s.connections)) over --processes \(s.processes) needs \(count(s.perProcess)) descriptors per process "
                + "but one process may open \(count(s.usable)) \(limits): raise --processes to \(s.processesNeeded) "
                + "or lower --connections to \(count(s.usable * s.processes))"
        case .ports(let s):
            let example = s.suggestedRange.map {
                "--source \(SocketAddress(ipv4Value: $0.lowerBound, port: 0).host)-\(SocketAddress(ipv4Value: $0.upperBound, port: 0).host)"
            } ?? "--source with \(s.sourcesNeeded) local addresses"
            return "--connections \(count(s.connections)) from \(s.sources) source address\(s.sources == 1 ? "" : "es") needs \(count(s.perSource)) "
                + "local ports per source but one source address has \(count(s.portsPerSource)) ports per destination: "
                + "add \(example) (\(s.sourcesNeeded) addresses) or lower --connections to \(count(s.portsPerSource * s.sources))"
        case .sources(let text, let problem):
            switch problem {
            case .rangeNotIPv4: return "--source '\(text)': ranges are IPv4 only; list IPv6 addresses with commas"
            case .rangeBackwards: return "--source '\(text)': the range runs backwards; write the lower address first"
            case .tooMany(let maximum): return "--source '\(text)': more than \(maximum) addresses"
            case .empty: return "--source '\(text)' names no address; write e.g. 127.0.0.2,127.0.0.3 or 127.0.0.2-127.0.0.50"
            case .unparsable(let reason): return "--source: \(reason); write e.g. 127.0.0.2,127.0.0.3 or 127.0.0.2-127.0.0.50"
            }
        case .connectionsLog(let path, let errno): return "--connections-log \(path): cannot open: \(errno); name a writable file"
        }
    }
}

extension LoadRunFailure {
    /// The failure in this command's words: where the library says what happened, the command also
    /// names what to run or which option to change.
    var commandLineText: String {
        switch self {
        case .refused(let target):
            "\(self) (start one: ringstorm serve --listen \(target))"
        case .noResponseParsed(let errors, let spoken, let likely):
            "connections were established but no response parsed (\(ReportFormat.count(errors)) protocol errors): "
                + "does the server speak --protocol \(spoken)?" + Self.mismatchHint(spoken, likely: likely)
        case .connectionsLogFailed(let path, let error, let lost):
            "--connections-log \(path): write failed: \(error); \(ReportFormat.count(lost)) line\(lost == 1 ? "" : "s") lost; "
                + "free space or name another file"
        case .nothingAttempted, .connectsTimedOut, .noConnection:
            description
        }
    }
}
