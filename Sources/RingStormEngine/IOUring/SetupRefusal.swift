import Glibc

/// Why `io_uring_setup` failed, named as far as the process can tell: the fix differs by cause (a sysctl
/// only root can change, a container's seccomp profile, a kernel without io_uring), and "operation not
/// permitted" alone names none of them.
extension EngineError.Reason {
    /// The reason for `io_uring_setup`'s `errno`, reading `kernel.io_uring_disabled` and this process's
    /// seccomp mode from /proc.
    package static func ioUringSetupFailed(_ errno: Errno) -> Self {
        ioUringSetupFailed(errno, disabledSysctl: readProcInteger("/proc/sys/kernel/io_uring_disabled", field: nil),
                           seccompMode: readProcInteger("/proc/self/status", field: "Seccomp:"))
    }

    /// The same from given readings (nil: could not be read), which is what the tests check.
    ///
    /// - `kernel.io_uring_disabled` 2 refuses everyone, 1 everyone outside `kernel.io_uring_group`
    ///   without CAP_SYS_ADMIN: both with EPERM (kernel 6.6+).
    /// - A seccomp filter (Seccomp: 2) answers with whatever errno its profile says: EPERM from Docker's
    ///   and containerd's default profiles (they deny io_uring since Docker 25 and containerd 2.0), ENOSYS
    ///   from some sandboxes; so ENOSYS under a filter is the filter's, not the kernel's.
    /// - ENOSYS with no filter: a kernel built without io_uring.
    package static func ioUringSetupFailed(_ errno: Errno, disabledSysctl: Int?, seccompMode: Int?) -> Self {
        let refused = errno == .notPermitted || errno == Errno(rawValue: EACCES)
        guard refused || errno == .noSystem else { return .ioUringUnavailable }
        if let disabled = disabledSysctl, disabled == 2 || (disabled == 1 && refused) {
            return .ioUringDisabled(by: .sysctl(disabled))
        }
        if seccompMode == 2 { return .ioUringDisabled(by: .seccompFilter) }
        return refused ? .ioUringDisabled(by: .unknown) : .ioUringMissing
    }

    /// The first integer in a small /proc file, after `field` when given (a "Name:\tvalue" line).
    private static func readProcInteger(_ path: String, field: String?) -> Int? {
        guard let text = ProcFile.text(path), !text.isEmpty else { return nil }
        let line: Substring
        if let field {
            guard let found = text.split(separator: "\n").first(where: { $0.hasPrefix(field) }) else { return nil }
            line = found.dropFirst(field.count)
        } else {
            line = Substring(text)
        }
        return Int(line.trimmingCharacters(in: " \t\n"))
    }
}

extension EngineError {
    /// What refused io_uring: the part of the cause the fix depends on.
    public enum IOUringBlocker: Sendable, Equatable {
        /// sysctl `kernel.io_uring_disabled` is 1 (only root and `kernel.io_uring_group`) or 2 (nobody).
        case sysctl(Int)
        /// This process runs under a seccomp filter that denies `io_uring_setup`: a container runtime's
        /// default profile (Docker 25+, containerd 2.0+) or a profile like it.
        case seccompFilter
        /// Neither of those shows (an LSM policy?).
        case unknown
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var result = self
        while let first = result.first, set.contains(first) { result = result.dropFirst() }
        while let last = result.last, set.contains(last) { result = result.dropLast() }
        return result
    }
}
