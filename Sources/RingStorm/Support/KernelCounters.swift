import Foundation
import RingStormEngine

/// The kernel's own network counters that explain what a connection-level report cannot: packets the
/// loopback backlog dropped, TCP retransmissions, accept-queue overflows, connections the kernel reset
/// on close. They are system-wide (every process on the machine adds to them), so a report carries the
/// change over its run, taken by the process that started the run, and says so.
public struct KernelCounters: Codable, Sendable, Equatable {
    /// Packets dropped because a CPU's input backlog was full (`/proc/net/softnet_stat`, 2nd column;
    /// on loopback every sent packet goes through it; limit `net.core.netdev_max_backlog`).
    public var backlogDrops = 0
    /// TCP segments retransmitted (`/proc/net/snmp` RetransSegs): each means a loss and a timeout or probe.
    public var retransmits = 0
    /// Retransmission timeouts (TCPTimeouts): 200 ms or more of stall each.
    public var timeouts = 0
    /// A completed handshake found the accept queue full (ListenOverflows): the client's SYN-ACK ACK
    /// is dropped, or, with `tcp_abort_on_overflow`, the client is reset.
    public var listenOverflows = 0
    /// Incoming connections dropped at the listener for any reason (ListenDrops, includes overflows).
    public var listenDrops = 0
    /// Connections reset because they were closed with unread data (TCPAbortOnClose).
    public var abortsOnClose = 0
    /// SYN cookies sent because the SYN queue was full (SyncookiesSent).
    public var synCookiesSent = 0

    enum CodingKeys: String, CodingKey {
        case backlogDrops = "backlog_drops"
        case retransmits
        case timeouts
        case listenOverflows = "listen_overflows"
        case listenDrops = "listen_drops"
        case abortsOnClose = "aborts_on_close"
        case synCookiesSent = "syn_cookies_sent"
    }

    public init() {}

    /// The counters now; zeros for whatever this kernel does not expose.
    public static func read() -> KernelCounters {
        var c = KernelCounters()
        if let softnet = ProcFile.text("/proc/net/softnet_stat") {
            for line in softnet.split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count > 1, let drops = Int(fields[1], radix: 16) { c.backlogDrops += drops }
            }
        }
        let snmp = table("/proc/net/snmp", prefix: "Tcp:")
        c.retransmits = snmp["RetransSegs"] ?? 0
        let ext = table("/proc/net/netstat", prefix: "TcpExt:")
        c.timeouts = ext["TCPTimeouts"] ?? 0
        c.listenOverflows = ext["ListenOverflows"] ?? 0
        c.listenDrops = ext["ListenDrops"] ?? 0
        c.abortsOnClose = ext["TCPAbortOnClose"] ?? 0
        c.synCookiesSent = ext["SyncookiesSent"] ?? 0
        return c
    }

    /// Two hosts' counters together (`ringstorm merge` of shards on different machines).
    public static func + (a: KernelCounters, b: KernelCounters) -> KernelCounters {
        var d = KernelCounters()
        d.backlogDrops = a.backlogDrops + b.backlogDrops
        d.retransmits = a.retransmits + b.retransmits
        d.timeouts = a.timeouts + b.timeouts
        d.listenOverflows = a.listenOverflows + b.listenOverflows
        d.listenDrops = a.listenDrops + b.listenDrops
        d.abortsOnClose = a.abortsOnClose + b.abortsOnClose
        d.synCookiesSent = a.synCookiesSent + b.synCookiesSent
        return d
    }

    /// What changed between two readings.
    public static func - (after: KernelCounters, before: KernelCounters) -> KernelCounters {
        var d = KernelCounters()
        d.backlogDrops = after.backlogDrops - before.backlogDrops
        d.retransmits = after.retransmits - before.retransmits
        d.timeouts = after.timeouts - before.timeouts
        d.listenOverflows = after.listenOverflows - before.listenOverflows
        d.listenDrops = after.listenDrops - before.listenDrops
        d.abortsOnClose = after.abortsOnClose - before.abortsOnClose
        d.synCookiesSent = after.synCookiesSent - before.synCookiesSent
        return d
    }

    public var isQuiet: Bool { self == KernelCounters() }

    /// What every rendering of these counters says with them: they are the machine's, not the run's.
    public static let systemWideNote = "system-wide: every process on this machine adds to them, so they may include other traffic"

    /// Lines for the text report: what the kernel did, and what it means, only where something happened.
    /// Counts are grouped by thousands; the counters are system-wide, so the lines may include other
    /// traffic on the machine (`systemWideNote`).
    public var explanation: [String] {
        func n(_ value: Int) -> String { ReportFormat.count(value) }
        var lines: [String] = []
        if backlogDrops > 0 {
            let limit = ProcFile.text("/proc/sys/net/core/netdev_max_backlog")?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            lines.append("the kernel dropped \(n(backlogDrops)) packets at a full input backlog (net.core.netdev_max_backlog = \(limit)); "
                + "latencies include TCP's recovery. Raise it: sysctl -w net.core.netdev_max_backlog=16384")
        }
        if retransmits > 0 {
            lines.append("TCP retransmitted \(n(retransmits)) segments (\(n(timeouts)) after a retransmission timeout of 200 ms or more)")
        }
        if listenOverflows > 0 {
            lines.append("\(n(listenOverflows)) handshakes found an accept queue full (ListenOverflows): those clients' connects stall and retry; "
                + "a larger listen backlog (the server's listen(2) backlog, capped by net.core.somaxconn) or a faster accept loop helps")
        }
        if abortsOnClose > 0 {
            lines.append("\(n(abortsOnClose)) connections were closed with unread data and reset (RST) by their own side")
        }
        if synCookiesSent > 0 {
            lines.append("\(n(synCookiesSent)) SYN cookies sent: the SYN queue (net.ipv4.tcp_max_syn_backlog) overflowed")
        }
        return lines
    }

    /// Reads a `/proc/net/snmp`-style file: a header line and a value line per protocol prefix.
    private static func table(_ path: String, prefix: String) -> [String: Int] {
        guard let text = ProcFile.text(path) else { return [:] }
        let rows = text.split(separator: "\n").filter { $0.hasPrefix(prefix) }
        guard rows.count >= 2 else { return [:] }
        let names = rows[0].split(separator: " ").dropFirst()
        let values = rows[1].split(separator: " ").dropFirst()
        var result: [String: Int] = [:]
        for (name, value) in zip(names, values) { result[String(name)] = Int(value) }
        return result
    }
}
