import Glibc

/// The process's descriptor limit (RLIMIT_NOFILE). Lowering the soft limit is how `--max-fds`
/// reproduces descriptor exhaustion cheaply: the hard limit here cannot be raised, but any process may
/// lower its own soft limit, and raise it again up to the hard limit.
package enum DescriptorLimit {
    /// The soft and hard limits.
    package static var current: (soft: Int, hard: Int) {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return (clamp(limit.rlim_cur), clamp(limit.rlim_max))
    }

    /// Sets the soft limit to `soft`; throws `maxFDsAboveHardLimit` when it is above the hard limit.
    package static func setSoft(_ soft: Int) throws(ServerError) {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let hard = clamp(limit.rlim_max)
        guard soft <= hard else {
            throw .maxFDsAboveHardLimit(soft, hard: hard)
        }
        guard soft > 0 else { throw .maxFDsTooLow(soft) }
        limit.rlim_cur = rlim_t(soft)
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            let e = errno
            throw .cannotSetDescriptorLimit(soft, hard: hard, reason: String(cString: strerror(e)))
        }
    }

    /// Raises the soft limit to the hard one, as far as the kernel lets it (`fs.nr_open`). Container
    /// runtimes and systemd start processes at 1024 under a far larger hard limit (containerd 2.0:
    /// 1024 soft, 524,288 hard) and expect a program that needs more to raise its own, as Go's runtime
    /// does; here one connection is one descriptor. Nothing changes where soft is already hard.
    package static func raiseSoftToHard() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let wanted = limit.rlim_max
        limit.rlim_cur = wanted
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { return }
        // An unlimited hard limit is still capped by fs.nr_open (1,048,576 by default).
        limit.rlim_cur = min(wanted, 1 << 20)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// Descriptors open in this process now (entries of /proc/self/fd, less the one used to list it).
    package static var openCount: Int {
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let first = entry.pointee.d_name.0
            if first != 0x2E { n += 1 }  // not "." or ".."
        }
        return max(n - 1, 0)
    }

    private static func clamp(_ value: rlim_t) -> Int { Int(min(value, rlim_t(Int32.max))) }
}
