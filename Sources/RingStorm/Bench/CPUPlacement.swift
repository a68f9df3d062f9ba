import Glibc

/// Which CPU each side of the bench runs on, and pinning a child to it.
///
/// A child inherits the CPU affinity of the thread that spawns it (`posix_spawn`), and every thread
/// it creates inherits its creator's, so the bench pins the spawning thread, spawns, and restores the
/// mask: the whole child, engine threads included, stays on its CPU without a race against threads it
/// starts early.
public struct CPUPlacement: Sendable, Equatable, Codable {
    /// The server's CPU and the load's; nil when there are fewer than two CPUs to choose from
    /// (nothing is pinned).
    public var server: Int?
    public var load: Int?

    package init(server: Int?, load: Int?) {
        self.server = server
        self.load = load
    }

    /// Server on the first allowed CPU, load on the second; with `loadOnly`, the load on the first.
    package init(allowed: [Int], loadOnly: Bool) {
        if loadOnly {
            load = allowed.first
            server = nil
        } else if allowed.count >= 2 {
            server = allowed[0]
            load = allowed[1]
        }
    }

    /// The CPUs this thread may run on.
    package static func allowedCPUs() -> [Int] {
        var set = cpu_set_t()
        guard getAffinity(0, MemoryLayout<cpu_set_t>.size, &set) == 0 else { return [] }
        return withUnsafeBytes(of: &set) { raw in
            var cpus: [Int] = []
            for (index, byte) in raw.enumerated() {
                for bit in 0..<8 where byte & (1 << bit) != 0 { cpus.append(index * 8 + bit) }
            }
            return cpus
        }
    }

    /// Runs `body` (which spawns a child) with this thread pinned to `cpu`, then restores its mask.
    package static func pinned<T>(to cpu: Int?, _ body: () throws -> T) rethrows -> T {
        guard let cpu else { return try body() }
        var saved = cpu_set_t()
        guard getAffinity(0, MemoryLayout<cpu_set_t>.size, &saved) == 0 else { return try body() }
        var one = cpu_set_t()
        withUnsafeMutableBytes(of: &one) { raw in raw[cpu / 8] |= UInt8(1 << (cpu % 8)) }
        _ = setAffinity(0, MemoryLayout<cpu_set_t>.size, &one)
        defer { _ = setAffinity(0, MemoryLayout<cpu_set_t>.size, &saved) }
        return try body()
    }
}

// glibc declares these only under _GNU_SOURCE, which Swift's Glibc module does not set; their C ABI is
// plain (pid, size, pointer), so they are bound by name rather than through the C shim.
@_silgen_name("sched_getaffinity")
private func getAffinity(_ pid: pid_t, _ size: Int, _ mask: UnsafeMutableRawPointer) -> Int32
@_silgen_name("sched_setaffinity")
private func setAffinity(_ pid: pid_t, _ size: Int, _ mask: UnsafeRawPointer) -> Int32
