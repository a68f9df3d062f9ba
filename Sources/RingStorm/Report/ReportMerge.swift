import Foundation

/// `ringstorm merge`: reports of shards (or of any runs against one target) added up exactly. A load
/// report goes back to the `LoadWorkerReport` it was made from (its histograms decoded from their
/// HdrHistogram encoding) and the reports merge with `LoadWorkerReport.merge`, the same code that merges
/// threads and `--processes` workers: counts summed, histograms added and percentiles taken again, time
/// series aligned by wall-clock start, `peak_open` from the aligned series. Server reports merge with
/// `ServerReport.merge`.
public enum ReportMerge {
    /// A report as read from a file.
    public enum Input: Sendable {
        case load(LoadReport)
        case server(ServerReport)
    }

    /// Why reports cannot be merged; `description` is the line `ringstorm merge` prints.
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case notJSON(path: String)
        case notAReport(path: String)
        case malformed(path: String, kind: String, reason: String)
        case mixedKinds(first: String, firstKind: String, path: String, kind: String)
        case noHistograms(path: String, latency: String)
        case badHistogram(path: String, latency: String, reason: String)
        case different(what: String, first: String, firstValue: String, path: String, value: String)
        case nothing

        public var description: String {
            switch self {
            case .unreadable(let path, let reason):
                return "\(path): cannot read it (\(reason)); name a report written by ringstorm load --json or serve --json"
            case .notJSON(let path):
                return "\(path): not a JSON document (cut short or not a report?); name a report written by ringstorm load --json or serve --json"
            case .notAReport(let path):
                return "\(path): JSON, but neither a load report (latency_us) nor a server report (accepted); name a report written by ringstorm load --json or serve --json"
            case .malformed(let path, let kind, let reason):
                return "\(path): not a \(kind) report this version reads: \(reason)"
            case .mixedKinds(let first, let firstKind, let path, let kind):
                return "\(path) is a \(kind) report and \(first) a \(firstKind) report: merge load reports with load reports and server reports with server reports"
            case .noHistograms(let path, let latency):
                return "\(path): latency_us.\(latency) has no histogram (a report from before 0.11, or edited): it cannot be merged exactly; run it again with this version"
            case .badHistogram(let path, let latency, let reason):
                return "\(path): the \(latency) histogram is damaged (\(reason))"
            case .different(let what, let first, let firstValue, let path, let value):
                return "\(path) ran with \(what) \(value) and \(first) with \(firstValue): only runs of one load merge; give reports of the same \(what)"
            case .nothing:
                return "give at least one report to merge"
            }
        }
    }

    /// Reads one report file: a load or a server report, told apart by its keys.
    public static func read(path: String) throws(Problem) -> Input {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "not readable" : "no such file"
            throw .unreadable(path: path, reason: reason)
        }
        return try read(data, path: path)
    }

    /// Reads one report from its JSON (`path` only names it in errors).
    public static func read(_ data: Data, path: String) throws(Problem) -> Input {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { throw .notJSON(path: path) }
        if object["latency_us"] != nil {
            do { return .load(try LoadReport(json: data)) } catch { throw .malformed(path: path, kind: "load", reason: reason(error)) }
        }
        if object["accepted"] != nil {
            do { return .server(try ServerReport(json: data)) } catch { throw .malformed(path: path, kind: "server", reason: reason(error)) }
        }
        throw .notAReport(path: path)
    }

    /// A decoding error in words: which key, not Foundation's description.
    static func reason(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(type(of: error))" }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context)
            return "key \(at.isEmpty ? "" : at + ".")\(key.stringValue) missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context)) has the wrong type"
        case .dataCorrupted(let context):
            return "\(path(context)) is not valid"
        @unknown default:
            return "not readable"
        }
    }

    /// The mergeable form of a published load report: its histograms decoded (with their exact maxima).
    public static func workerReport(_ r: LoadReport, path: String) throws(Problem) -> LoadWorkerReport {
        var w = LoadWorkerReport(backend: r.backend, durationSeconds: r.durationSeconds)
        w.connections = r.connections
        w.requests = r.requests
        w.outcomes = r.outcomes
        func histogram(_ s: LatencySummary, _ name: String) throws(Problem) -> LatencyRecorder {
            guard s.histogram != nil else {
                if s.count == 0 { return LatencyRecorder() }
                throw .noHistograms(path: path, latency: name)
            }
            let recorder: LatencyRecorder?
            do { recorder = try s.recorder() } catch { throw .badHistogram(path: path, latency: name, reason: error.reason) }
            guard let recorder, recorder.count == s.count else {
                throw .badHistogram(path: path, latency: name, reason: "it holds a different count than count \(s.count)")
            }
            return recorder
        }
        w.latency.connect = try histogram(r.latency.connect, "connect")
        w.latency.register = try histogram(r.latency.register, "register")
        w.latency.request = try histogram(r.latency.request, "request")
        w.latency.sendLag = try histogram(r.latency.sendLag, "send_lag")
        w.latency.response = try histogram(r.latency.response, "response")
        w.syscalls = r.syscalls.total
        w.serverErrors = r.serverErrors ?? [:]
        w.http = r.http ?? HTTPStatusCounts()
        w.generator = r.generator
        w.memory = r.memory
        w.connectionsLogFailure = r.connectionsLogFailure
        for (n, interval) in r.intervals.enumerated() {
            guard let h = interval.requestHistogram else { continue }
            do { _ = try HdrHistogramEncoding.decode(h, compact: true) } catch {
                throw .badHistogram(path: path, latency: "intervals[\(n)].request", reason: error.reason)
            }
        }
        w.intervals = r.intervals
        w.intervalMs = r.intervalMs
        w.startedAtMs = r.provenance?.startedAtMs
        w.startLateByMs = r.provenance?.startLateByMs
        // Machines run side by side, as workers do: steady rates add (`SteadyWindow`).
        w.steady = r.steady
        return w
    }

    /// What must be equal for two load runs to be one load: the protocol, the target, the interval.
    static func identity(_ r: LoadReport) -> [(what: String, value: String)] {
        var out: [(String, String)] = []
        if case .object(let c)? = r.provenance?.configuration {
            if let p = c["wireProtocol"] { out.append(("protocol", text(p))) }
            if let t = c["target"] { out.append(("target", text(t))) }
        }
        if let i = r.intervalMs { out.append(("--report-interval", "\(i) ms")) }
        return out
    }

    static func text(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return s
        case .number(let n): return String(n)
        default:
            guard let data = try? JSONEncoder().encode(v) else { return "?" }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// Load reports merged exactly; refuses reports of different protocols, targets or intervals.
    public static func mergeLoad(_ reports: [(path: String, report: LoadReport)]) throws(Problem) -> LoadReport {
        guard let first = reports.first else { throw .nothing }
        let firstIdentity = identity(first.report)
        var workers: [LoadWorkerReport] = []
        for (path, report) in reports {
            for (what, value) in identity(report) {
                if let mine = firstIdentity.first(where: { $0.what == what }), mine.value != value {
                    throw .different(what: what, first: first.path, firstValue: mine.value, path: path, value: value)
                }
            }
            workers.append(try workerReport(report, path: path))
        }
        let merged = LoadWorkerReport.merged(workers)!
        var out = merged.report
        out.kernel = reports.compactMap(\.report.kernel).reduce(nil) { sum, k in sum.map { $0 + k } ?? k }
        out.complete = reports.allSatisfy(\.report.complete)
        out.failedWorkers = reports.flatMap(\.report.failedWorkers)
        out.mergedFrom = reports.flatMap { $0.report.mergedFrom ?? ($0.report.provenance.map { [$0] } ?? []) }
        return out
    }

    /// Server reports merged: counts summed (`ServerReport.merge`).
    public static func mergeServer(_ reports: [(path: String, report: ServerReport)]) throws(Problem) -> ServerReport {
        guard var sum = reports.first?.report else { throw .nothing }
        for (_, r) in reports.dropFirst() { sum.merge(r) }
        return sum
    }

    /// Every file read and merged: a load or a server report, or the first problem.
    public static func merge(paths: [String]) throws(Problem) -> Input {
        guard !paths.isEmpty else { throw .nothing }
        var loads: [(String, LoadReport)] = []
        var servers: [(String, ServerReport)] = []
        for path in paths {
            switch try read(path: path) {
            case .load(let r):
                if let other = servers.first { throw .mixedKinds(first: other.0, firstKind: "server", path: path, kind: "load") }
                loads.append((path, r))
            case .server(let r):
                if let other = loads.first { throw .mixedKinds(first: other.0, firstKind: "load", path: path, kind: "server") }
                servers.append((path, r))
            }
        }
        return loads.isEmpty ? .server(try mergeServer(servers)) : .load(try mergeLoad(loads))
    }
}
