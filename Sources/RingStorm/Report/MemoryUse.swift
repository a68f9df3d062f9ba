import Foundation
import RingStormEngine

/// User memory per connection, as the reports carry it: the process's resident set (VmRSS: the pages
/// of its own memory actually in RAM, not the kernel's socket memory) before its engines were made,
/// and when the most connections were open, sampled about once a second. The difference over the
/// open connections is what one more connection costs in user memory, including every table sized to
/// the run (per-client state, slots) and whatever buffers the connections touched. Worker processes'
/// figures add up (`merge`): the whole run's growth over all its connections.
public struct MemoryUse: Codable, Sendable, Equatable {
    /// KiB, summed over processes.
    public var rssBeforeKiB: Int
    public var rssAtPeakKiB: Int
    /// Connections open when `rssAtPeakKiB` was sampled (summed over processes).
    public var openAtPeak: Int
    public var processes: Int

    public init(rssBeforeKiB: Int, rssAtPeakKiB: Int, openAtPeak: Int, processes: Int = 1) {
        self.rssBeforeKiB = rssBeforeKiB
        self.rssAtPeakKiB = rssAtPeakKiB
        self.openAtPeak = openAtPeak
        self.processes = processes
    }

    /// Bytes of user memory per open connection (nil before any was open).
    public var bytesPerConnection: Double? {
        openAtPeak > 0 ? Double(rssAtPeakKiB - rssBeforeKiB) * 1024 / Double(openAtPeak) : nil
    }

    public mutating func merge(_ other: MemoryUse) {
        rssBeforeKiB += other.rssBeforeKiB
        rssAtPeakKiB += other.rssAtPeakKiB
        openAtPeak += other.openAtPeak
        processes += other.processes
    }

    /// Both merged; either alone when the other is missing.
    static func merged(_ a: MemoryUse?, _ b: MemoryUse?) -> MemoryUse? {
        guard var sum = a else { return b }
        if let b { sum.merge(b) }
        return sum
    }

    /// The text report's line, e.g. `user RSS 412 B per connection (24.1 → 30.2 MiB at 15,000 open)`.
    public var text: String {
        guard let per = bytesPerConnection else { return "user RSS \(rssBeforeKiB) KiB, no connection open when sampled" }
        return "user RSS " + ReportFormat.count(Int(per.rounded())) + " B per connection ("
            + ReportFormat.decimal(Double(rssBeforeKiB) / 1024, places: 1) + " → "
            + ReportFormat.decimal(Double(rssAtPeakKiB) / 1024, places: 1) + " MiB at "
            + ReportFormat.count(openAtPeak) + " open" + (processes > 1 ? ", \(processes) processes" : "") + ")"
    }

    enum CodingKeys: String, CodingKey {
        case rssBeforeKiB = "rss_before_kib"
        case rssAtPeakKiB = "rss_at_peak_kib"
        case openAtPeak = "open_at_peak"
        case processes
        case bytesPerConnection = "user_bytes_per_connection"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rssBeforeKiB = try c.decode(Int.self, forKey: .rssBeforeKiB)
        rssAtPeakKiB = try c.decode(Int.self, forKey: .rssAtPeakKiB)
        openAtPeak = try c.decode(Int.self, forKey: .openAtPeak)
        processes = try c.decodeIfPresent(Int.self, forKey: .processes) ?? 1
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rssBeforeKiB, forKey: .rssBeforeKiB)
        try c.encode(rssAtPeakKiB, forKey: .rssAtPeakKiB)
        try c.encode(openAtPeak, forKey: .openAtPeak)
        try c.encode(processes, forKey: .processes)
        if let per = bytesPerConnection { try c.encode((per * 10).rounded() / 10, forKey: .bytesPerConnection) }
    }

    /// This process's resident set in KiB (`/proc/self/statm`'s second field, in pages), nil where unreadable.
    public static func residentKiB() -> Int? {
        guard let text = ProcFile.text("/proc/self/statm") else { return nil }
        return parseStatm(text, pageSize: Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    static func parseStatm(_ text: String, pageSize: Int) -> Int? {
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let pages = Int(fields[1]) else { return nil }
        return pages * pageSize / 1024
    }
}

/// Samples one process's resident set against its open connections: the baseline once, before the
/// engines are made, then the sample at the most connections seen. Called about once a second (the
/// live progress, a worker process's report to its parent), never on the run loop.
package final class MemorySampler: @unchecked Sendable {
    private let lock = NSLock()
    private let before: Int?
    private var peakRSS = 0
    private var peakOpen = 0

    package init() { before = MemoryUse.residentKiB() }

    package func sample(open: Int) {
        guard before != nil, open > 0 else { return }
        lock.lock(); defer { lock.unlock() }
        guard open >= peakOpen, let rss = MemoryUse.residentKiB() else { return }
        peakOpen = open
        peakRSS = rss
    }

    package var use: MemoryUse? {
        lock.lock(); defer { lock.unlock() }
        guard let before else { return nil }
        return MemoryUse(rssBeforeKiB: before, rssAtPeakKiB: peakOpen > 0 ? peakRSS : before, openAtPeak: peakOpen)
    }
}
