import Glibc
import RingStormEngine

/// What one process may open, checked before a run starts (issue section 4): descriptors per process
/// (RLIMIT_NOFILE, which cannot be raised here) and local ports per source address and destination.
public struct LoadBudget: Sendable, Equatable {
    /// Descriptors the process may open (soft RLIMIT_NOFILE).
    public var descriptorLimit: Int
    /// Local ports per source address and destination (`ip_local_port_range`: 28,232 here).
    public var portsPerSource: Int

    /// Descriptors kept back for the engines, the log file and standard streams.
    public static func margin(threads: Int) -> Int { 8 + 2 * threads }

    public init(descriptorLimit: Int, portsPerSource: Int) {
        self.descriptorLimit = descriptorLimit
        self.portsPerSource = portsPerSource
    }

    /// This process's limits.
    public static var current: LoadBudget {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return LoadBudget(descriptorLimit: Int(min(limit.rlim_cur, 1 << 24)), portsPerSource: EphemeralPorts.system.count)
    }

    /// The most worker processes `--processes` starts.
    public static let maximumProcesses = 64

    /// Throws with the numbers when `configuration` does not fit `processes` worker
    /// processes: descriptors per process × processes, ports per source address × source addresses
    /// (ports are per source address and destination, machine-wide, so more processes do not add any).
    public func check(_ configuration: LoadGenerator.Configuration, processes: Int = 1) throws(LoadError) {
        let n = configuration.connections
        let margin = Self.margin(threads: configuration.threads)
        let usable = descriptorLimit - margin
        let processes = max(processes, 1)
        let perProcess = (n + processes - 1) / processes
        if perProcess > usable {
            throw .descriptors(.init(connections: n, processes: processes, perProcess: perProcess, usable: usable,
                                     limit: descriptorLimit, margin: margin, processesNeeded: (n + usable - 1) / max(usable, 1)))
        }
        let sources = max(1, configuration.sources.count)
        let perSource = (n + sources - 1) / sources
        if perSource > portsPerSource {
            let needed = (n + portsPerSource - 1) / portsPerSource
            let loopback: UInt32? = (configuration.target.ipv4Value ?? 0) >> 24 == 127 ? 0x7F00_0002 : nil
            let range = (configuration.sources.first?.ipv4Value ?? loopback).map { $0...($0 &+ UInt32(needed - 1)) }
            throw .ports(.init(connections: n, sources: sources, perSource: perSource, portsPerSource: portsPerSource,
                               sourcesNeeded: needed, suggestedRange: range))
        }
    }
}
