import CoreMetrics
import Foundation
import Glibc
import Prometheus
import RingStorm
import RingStormEngine

/// `--metrics HOST:PORT`: Prometheus text at `http://HOST:PORT/metrics` while a run goes on (names and
/// labels in `Docs/metrics.md`).
///
/// Pull, not push: nothing is added to the engines' hot path. On each scrape the endpoint takes the
/// run's snapshot (the same one the live line prints, published by the workers about once a second),
/// brings the swift-metrics counters and gauges up to it (counters by the difference since the last
/// scrape), and answers with the Prometheus registry's text. The listening socket is bound before the
/// run starts, so a bad address or a port in use is bad input (exit status 2).
final class MetricsEndpoint: @unchecked Sendable {
    let address: SocketAddress
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let update: (MetricsEndpoint) -> Void
    private let fd: Int32
    private let stopFlag = StopFlag()
    private var counters: [String: (counter: CoreMetrics.Counter, last: Int)] = [:]
    private var gauges: [String: CoreMetrics.Gauge] = [:]
    /// Families written beside the registry's output (the latency histograms), set by `update`.
    var histograms = ""

    /// Binds and listens on `text` (`HOST:PORT`; port 0: the kernel picks one) and serves from a thread
    /// of its own; `update` brings the metrics up to the run's state before each scrape.
    init(_ text: String, update: @escaping (MetricsEndpoint) -> Void) throws {
        let address = try AddressArgument.parse(text, option: "--metrics")
        factory = PrometheusMetricsFactory(registry: registry)
        self.update = update
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw UsageError("--metrics \(text): cannot create a socket: \(Errno.current)") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSockAddr({ bind(fd, $0, $1) }) == 0, listen(fd, 16) == 0 else {
            let error = Errno.current
            close(fd)
            let fix = error == .addressInUse ? "another process listens there; pick another port" : "pick another --metrics address"
            throw UsageError("--metrics \(text): cannot listen: \(error); \(fix)")
        }
        self.fd = fd
        // The address bound (port 0: the one the kernel picked).
        var bound = SocketAddress()
        self.address = bound.withMutableSockAddr { getsockname(fd, $0, $1) } == 0 ? bound : address
        let thread = Thread { [self] in serve() }
        thread.name = "ringstorm-metrics"
        thread.start()
    }

    /// Stops answering (the socket closes when the thread sees the flag).
    func stop() { stopFlag.stop() }

    /// The line the banner adds.
    var bannerText: String {
        let host = address.isIPv6 ? "[\(address.host)]" : address.host
        return "metrics on http://\(host):\(address.port)/metrics"
    }

    // MARK: What `update` calls

    /// A counter brought up to `value` (it only grows: a smaller value is ignored).
    func count(_ name: String, _ value: Int, _ labels: [(String, String)] = []) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let entry = counters[key] ?? (CoreMetrics.Counter(label: name, dimensions: labels, factory: factory), 0)
        if value > entry.last { entry.counter.increment(by: value - entry.last) }
        counters[key] = (entry.counter, max(value, entry.last))
    }

    /// A gauge set to `value`.
    func gauge(_ name: String, _ value: Double, _ labels: [(String, String)] = []) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let gauge = gauges[key] ?? CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
        gauges[key] = gauge
        gauge.record(value)
    }

    /// Every failure outcome by phase, as `PREFIX_failures_total{phase,outcome}`.
    func outcomes(_ prefix: String, _ outcomes: PhaseOutcomes) {
        for phase in Phase.allCases {
            for item in outcomes[phase].nonZero {
                count(prefix + "_failures_total", item.count, [("phase", phase.rawValue), ("outcome", item.outcome.name)])
            }
        }
    }

    // MARK: Serving

    private func serve() {
        defer { close(fd) }
        while !stopFlag.isStopped {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            answer(client)
            close(client)
        }
    }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 65_536 {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            request += buffer[0..<n]
            if request.firstRange(of: [13, 10, 13, 10]) != nil { break }  // the end of the headers
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        var body: [UInt8]
        var status = "200 OK"
        var type = "text/plain; version=0.0.4; charset=utf-8"
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            update(self)
            body = registry.emitToBuffer()
            body += Array(histograms.utf8)
        } else {
            status = "404 Not Found"
            type = "text/plain; charset=utf-8"
            body = Array("ringstorm serves its metrics at GET /metrics\n".utf8)
        }
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var response = Array(head.utf8)
        response += body
        var offset = 0
        while offset < response.count {
            let n = response.withUnsafeBytes { send(client, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            offset += n
        }
    }
}

extension MetricsEndpoint {
    /// The load generator's metrics from a merged snapshot (`open`: connections open now).
    func load(_ report: LoadWorkerReport, open: Int, configured connections: Int) {
        gauge("ringstorm_load_connections_open", Double(open))
        gauge("ringstorm_load_connections_configured", Double(connections))
        count("ringstorm_load_connections_attempted_total", report.connections.attempted)
        count("ringstorm_load_connections_established_total", report.connections.established)
        count("ringstorm_load_requests_sent_total", report.requests.sent)
        count("ringstorm_load_requests_answered_total", report.requests.answered)
        count("ringstorm_load_syscalls_total", report.syscalls)
        outcomes("ringstorm_load", report.outcomes)
        histograms = Self.histogramText("ringstorm_load_latency_seconds",
                                        help: "Latency since the start of the run, from the run's HDR histograms.",
                                        [("connect", report.latency.connect), ("register", report.latency.register),
                                         ("request", report.latency.request)])
    }

    /// The bucket bounds of the latency histograms: 1-2.5-5 steps from 10 µs to 10 s, as Prometheus
    /// writes them (`le`, in seconds) and in the recorders' microseconds.
    static let latencyBuckets: [(le: String, microseconds: UInt64)] = [
        ("1e-05", 10), ("2.5e-05", 25), ("5e-05", 50), ("0.0001", 100), ("0.00025", 250), ("0.0005", 500),
        ("0.001", 1_000), ("0.0025", 2_500), ("0.005", 5_000), ("0.01", 10_000), ("0.025", 25_000), ("0.05", 50_000),
        ("0.1", 100_000), ("0.25", 250_000), ("0.5", 500_000), ("1", 1_000_000), ("2.5", 2_500_000), ("5", 5_000_000),
        ("10", 10_000_000),
    ]

    /// A Prometheus histogram family in the text format, one series per `kind`, computed from the
    /// recorders: cumulative `_bucket{le}` counts (the values at or below each bound), `+Inf`, `_sum` and
    /// `_count`, in seconds. swift-prometheus' histograms only take observations one by one, so these
    /// are written here, beside its output.
    static func histogramText(_ name: String, help: String, _ kinds: [(String, LatencyRecorder)]) -> String {
        var text = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (kind, recorder) in kinds {
            for bucket in latencyBuckets {
                text += "\(name)_bucket{kind=\"\(kind)\",le=\"\(bucket.le)\"} \(recorder.count(atOrBelow: bucket.microseconds))\n"
            }
            text += "\(name)_bucket{kind=\"\(kind)\",le=\"+Inf\"} \(recorder.count)\n"
            text += "\(name)_sum{kind=\"\(kind)\"} \(recorder.sumMicroseconds / 1e6)\n"
            text += "\(name)_count{kind=\"\(kind)\"} \(recorder.count)\n"
        }
        return text
    }

    /// The server's metrics from a snapshot (summed over worker processes).
    func server(_ snapshot: ServerSnapshot) {
        let r = snapshot.report
        gauge("ringstorm_server_connections_open", Double(snapshot.openConnections))
        gauge("ringstorm_server_listeners_paused", Double(snapshot.pausedListeners))
        count("ringstorm_server_accepted_total", r.accepted)
        count("ringstorm_server_shed_total", r.shed)
        for (name, n) in r.acceptErrors { count("ringstorm_server_accept_errors_total", n, [("errno", name)]) }
        count("ringstorm_server_registered_total", r.registered)
        for (reason, n) in [("by_peer", r.closedByPeer), ("reset_by_peer", r.resetByPeer), ("idle", r.idleClosed),
                            ("register_timeout", r.registerTimeouts), ("protocol_error", r.protocolErrors)] {
            count("ringstorm_server_closed_total", n, [("reason", reason)])
        }
        count("ringstorm_server_requests_total", r.requests)
        count("ringstorm_server_syscalls_total", r.syscalls)
        if let bytes = r.bytesEchoed { count("ringstorm_server_echoed_bytes_total", bytes) }
    }
}
