import Foundation
import Glibc

/// The version `ringstorm --version` prints and reports record.
public let ringStormVersion = "0.11.0"

/// Who made a report, where, when and with what: so a merged report of many shards can say what it
/// merged, and a report read a month later still says how it was run.
public struct Provenance: Codable, Sendable, Equatable {
    public var version = ringStormVersion
    /// `gethostname`.
    public var host = Provenance.hostName()
    /// `I/N` with `--shard` (I from 0 to N - 1), absent for an unsharded run.
    public var shard: String?
    /// When the run started, wall clock: RFC 3339 UTC and Unix milliseconds.
    public var startedAt: String
    public var startedAtMs: Int64
    /// `--start-at`: the start asked for (Unix ms), and how late this run started past it when that was
    /// more than the tolerance (ms); absent when on time.
    public var startAtMs: Int64?
    public var startLateByMs: Double?
    /// `uname`: system, release and version, e.g. `Linux 6.12.48 #1 SMP PREEMPT_DYNAMIC ...`.
    public var kernel = Provenance.kernelVersion()
    public var backend: String
    /// The kernel features the engines set up and used (`EngineStatistics.features`): io_uring's setup
    /// flags, registered ring fd, multishot accept and receive, provided buffers, `IP_LOCAL_PORT_RANGE`;
    /// epoll's `epoll_pwait2`. Absent in reports written before it was recorded.
    public var backendFeatures: [String]?
    /// The command line (`argv`).
    public var command: [String] = CommandLine.arguments
    /// The whole configuration the run used, as the program holds it.
    public var configuration: JSONValue?

    public init(backend: String, startedAtMs: Int64, configuration: JSONValue? = nil) {
        self.backend = backend
        self.startedAtMs = startedAtMs
        startedAt = Provenance.rfc3339(milliseconds: startedAtMs)
        self.configuration = configuration
    }

    enum CodingKeys: String, CodingKey {
        case version, host, shard
        case startedAt = "started_at"
        case startedAtMs = "started_at_ms"
        case startAtMs = "start_at_ms"
        case startLateByMs = "start_late_by_ms"
        case kernel, backend
        case backendFeatures = "backend_features"
        case command, configuration
    }

    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func kernelVersion() -> String {
        var u = utsname()
        guard uname(&u) == 0 else { return "unknown" }
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return "\(field(u.sysname)) \(field(u.release)) \(field(u.version))"
    }

    /// `2026-12-02T06:22:09.123Z`.
    public static func rfc3339(milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(milliseconds % 1000))
    }
}

/// Any JSON value: a configuration kept in a report whatever its type (load or server, this version or
/// another), so reading a report never fails on it.
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n):
            if n == n.rounded(), abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// `value` as JSON (nil when it does not encode).
    public init?(encoding value: some Encodable) {
        guard let data = try? JSONEncoder().encode(value), let v = try? JSONDecoder().decode(JSONValue.self, from: data) else { return nil }
        self = v
    }
}

extension LoadGenerator.Configuration {
    /// The provenance of a run of this configuration whose workers' merged report is `report`: the start
    /// it recorded, and its lateness past `--start-at` when over the tolerance.
    public func provenance(of report: LoadWorkerReport) -> Provenance {
        var p = Provenance(backend: report.backend, startedAtMs: report.startedAtMs ?? wallClockNanoseconds() / 1_000_000,
                           configuration: JSONValue(encoding: self))
        p.shard = shard?.description
        p.startAtMs = startAtNanoseconds.map { $0 / 1_000_000 }
        if let late = report.startLateByMs, late * 1e6 > Double(startToleranceNanoseconds) { p.startLateByMs = late }
        p.backendFeatures = report.backendFeatures
        return p
    }
}

extension RingStormServer.Configuration {
    /// The provenance of a server run of this configuration that started at `startedAtMs`, whose engines
    /// (all threads and processes) used `backendFeatures`.
    public func provenance(startedAtMs: Int64, backendFeatures: [String]) -> Provenance {
        var p = Provenance(backend: backend.rawValue, startedAtMs: startedAtMs, configuration: JSONValue(encoding: self))
        p.backendFeatures = backendFeatures
        return p
    }
}
