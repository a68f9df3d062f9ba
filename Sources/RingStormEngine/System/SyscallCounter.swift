/// The system calls the engine makes, each counted where it is made.
///
/// The counts are the engine's own bookkeeping, not a sampling: every call site in the backends goes
/// through `Syscalls` (or bumps the counter right beside a liburing call that enters the kernel), so
/// the totals can be checked against `perf stat -e raw_syscalls:sys_enter` and reported per operation.
public enum Syscall: Int, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case ioUringEnter, ioUringSetup, ioUringRegister
    case epollWait, epollCtl, epollCreate
    case socket, bind, listen, connect, accept, recv, send, shutdown, close, setsockopt, getsockopt
    case mmap, munmap, other

    public var description: String {
        switch self {
        case .ioUringEnter: "io_uring_enter"
        case .ioUringSetup: "io_uring_setup"
        case .ioUringRegister: "io_uring_register"
        case .epollWait: "epoll_wait"
        case .epollCtl: "epoll_ctl"
        case .epollCreate: "epoll_create1"
        case .socket: "socket"
        case .bind: "bind"
        case .listen: "listen"
        case .connect: "connect"
        case .accept: "accept4"
        case .recv: "recvfrom"
        case .send: "sendto"
        case .shutdown: "shutdown"
        case .close: "close"
        case .setsockopt: "setsockopt"
        case .getsockopt: "getsockopt"
        case .mmap: "mmap"
        case .munmap: "munmap"
        case .other: "other"
        }
    }
}

/// Per-syscall counts in a flat array: one increment on the hot path, no hashing.
public struct SyscallCounts: Sendable, Equatable, Codable {
    public private(set) var counts: [Int] = Array(repeating: 0, count: Syscall.allCases.count)

    public init() {}

    @inline(__always)
    public mutating func record(_ call: Syscall, _ times: Int = 1) { counts[call.rawValue] &+= times }

    public subscript(_ call: Syscall) -> Int { counts[call.rawValue] }

    public var total: Int { counts.reduce(0, +) }

    /// Non-zero counts by syscall name, for reports.
    public var byName: [String: Int] {
        var result: [String: Int] = [:]
        for call in Syscall.allCases where counts[call.rawValue] > 0 { result[call.description] = counts[call.rawValue] }
        return result
    }

    public static func + (lhs: SyscallCounts, rhs: SyscallCounts) -> SyscallCounts {
        var sum = lhs
        for i in sum.counts.indices { sum.counts[i] += rhs.counts[i] }
        return sum
    }
}
