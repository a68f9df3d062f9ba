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
        return LoadBudget(descriptorLimit: Int(min(limit.rlim_cur, 1 << 24)), portsPerSource: ephemeralPortCount())
    }

    /// `hi - lo + 1` from `/proc/sys/net/ipv4/ip_local_port_range` (28,232 when it cannot be read).
    static func ephemeralPortCount() -> Int {
        let fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_RDONLY)
        guard fd >= 0 else { return 28_232 }
        defer { _ = Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 28_232 }
        let numbers = String(decoding: buffer[0..<n], as: UTF8.self).split { $0 == " " || $0 == "\t" || $0 == "\n" }.compactMap { Int($0) }
        guard numbers.count == 2, numbers[1] >= numbers[0] else { return 28_232 }
        return numbers[1] - numbers[0] + 1
    }

    /// The most worker processes `--processes` starts.
    public static let maximumProcesses = 64

    /// Throws with the numbers and the fix when `configuration` does not fit `processes` worker
    /// processes: descriptors per process × processes, ports per source address × source addresses
    /// (ports are per source address and destination, machine-wide, so more processes do not add any).
    public func check(_ configuration: LoadGenerator.Configuration, processes: Int = 1) throws(LoadError) {
        let n = configuration.connections
        let margin = Self.margin(threads: configuration.threads)
        let usable = descriptorLimit - margin
        let processes = max(processes, 1)
        let perProcess = (n + processes - 1) / processes
        if perProcess > usable {
            let needed = (n + usable - 1) / max(usable, 1)
            let limits = "(RLIMIT_NOFILE \(count(descriptorLimit)) minus \(margin) kept back)"
            if processes == 1 {
                throw LoadError("--connections \(count(n)) needs \(count(n)) descriptors but one process may open \(count(usable)) \(limits): "
                    + "add --processes \(needed) or lower --connections to \(count(usable))")
            }
            throw LoadError("--connections \(count(n)) over --processes \(processes) needs \(count(perProcess)) descriptors per process "
                + "but one process may open \(count(usable)) \(limits): raise --processes to \(needed) "
                + "or lower --connections to \(count(usable * processes))")
        }
        let sources = max(1, configuration.sources.count)
        let perSource = (n + sources - 1) / sources
        if perSource > portsPerSource {
            let needed = (n + portsPerSource - 1) / portsPerSource
            let example: String
            let loopback: UInt32? = (configuration.target.ipv4Value ?? 0) >> 24 == 127 ? 0x7F00_0002 : nil
            if let first = configuration.sources.first?.ipv4Value ?? loopback {
                let a = SocketAddress(ipv4Value: first, port: 0).host
                let b = SocketAddress(ipv4Value: first &+ UInt32(needed - 1), port: 0).host
                example = "--source \(a)-\(b)"
            } else {
                example = "--source with \(needed) local addresses"
            }
            throw LoadError("--connections \(count(n)) from \(sources) source address\(sources == 1 ? "" : "es") needs \(count(perSource)) "
                + "local ports per source but one source address has \(count(portsPerSource)) ports per destination: "
                + "add \(example) (\(needed) addresses) or lower --connections to \(count(portsPerSource * sources))")
        }
    }

    private func count(_ value: Int) -> String { ReportFormat.count(value) }
}
