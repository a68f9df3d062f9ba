import Glibc
import RingStormEngine

/// CPU time and memory of a running process, read from `/proc/PID/stat` and `/proc/PID/status`.
///
/// The bench reads them for each side (server, load) at two moments: when the side is ready (its
/// engine set up, before the measured work) and during the run, so CPU per request counts only the
/// measured window and memory per connection only what connections added. `wait4` gives a child's CPU
/// only once it has ended, and counts start-up too.
package struct ProcessSample: Sendable, Equatable {
    /// utime + stime of all threads, in seconds.
    package var cpuSeconds: Double
    /// Anonymous resident memory (`RssAnon`: heap, stacks, the engine's arrays and rings; not the
    /// binary's pages), in bytes.
    package var anonymousBytes: Int

    package init(cpuSeconds: Double, anonymousBytes: Int) {
        self.cpuSeconds = cpuSeconds
        self.anonymousBytes = anonymousBytes
    }

    /// The process's sample now; nil once it is gone.
    package static func read(pid: pid_t) -> ProcessSample? {
        guard let stat = ProcFile.text("/proc/\(pid)/stat"), let status = ProcFile.text("/proc/\(pid)/status"),
              let ticks = cpuTicks(statLine: stat), let rss = anonymousBytes(status: status) else { return nil }
        return ProcessSample(cpuSeconds: Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK))), anonymousBytes: rss)
    }

    /// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The command name
    /// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
    package static func cpuTicks(statLine: String) -> Int? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// `RssAnon:  1234 kB` of `/proc/PID/status`, in bytes.
    package static func anonymousBytes(status: String) -> Int? {
        for line in status.split(separator: "\n") where line.hasPrefix("RssAnon:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kilobytes = Int(parts[1]) else { return nil }
            return kilobytes * 1024
        }
        return nil
    }
}
