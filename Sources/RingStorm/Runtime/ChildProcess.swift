import Glibc
import RingStormEngine

/// Worker processes, spawned, watched and reaped in one place.
///
/// One process here may hold at most 20,000 descriptors (RLIMIT_NOFILE cannot be raised), so
/// `--processes N` runs N copies of the same binary. Swift cannot fork safely (the runtime and other
/// threads may hold locks), so a child is `posix_spawn` of `/proc/self/exe` (the running binary, even if
/// it was replaced on disk since), with descriptors handed over by `dup2` file actions. Every system call
/// here goes through `SystemCall.run`, which retries EINTR and throws a typed `Errno`.
enum SystemCall {
    /// Runs `body` until it does not fail with EINTR; throws its errno when it returns -1.
    @discardableResult
    static func run<T: BinaryInteger>(_ body: () -> T) throws(Errno) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let error = Errno.current
            if error != .interrupted { throw error }
        }
    }

    /// `close`, never retried (the descriptor is gone even on EINTR).
    static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// A one-way channel, both ends close-on-exec from the start (a child gets an end only through a
    /// `dup2` file action, never by a spawn racing on another thread). A socket pair rather than a pipe:
    /// Swift does not import `pipe2`, and `pipe` + `FD_CLOEXEC` would leave a window.
    static func pipe() throws(Errno) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        try run { fds.withUnsafeMutableBufferPointer { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, $0.baseAddress) } }
        _ = shutdown(fds[0], Int32(SHUT_WR))
        _ = shutdown(fds[1], Int32(SHUT_RD))
        return (fds[0], fds[1])
    }

    static func setNonBlocking(_ fd: Int32) throws(Errno) {
        let flags = try run { fcntl(fd, F_GETFL) }
        try run { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    /// A close-on-exec duplicate of `fd` numbered at least `minimum`.
    static func duplicate(_ fd: Int32, atLeast minimum: Int32) throws(Errno) -> Int32 {
        try run { fcntl(fd, F_DUPFD_CLOEXEC, minimum) }
    }
}

/// How a child process ended.
package enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Decodes a `wait` status (the `WIFEXITED`/`WTERMSIG` macros, which Swift does not import).
    init(waitStatus status: Int32) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(status & 0x7f)
        }
    }

    public var succeeded: Bool { self == .exited(0) }

    /// `exited with status 2`, `was killed by SIGKILL (Killed)`.
    public var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal): return "was killed by \(signalName(signal)) (\(String(cString: strsignal(signal))))"
        }
    }
}

/// `SIGKILL` for 9, ...; `signal N` for one without a name here.
public func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [
        SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
        SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
        SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
        SIGXCPU: "SIGXCPU", SIGSYS: "SIGSYS",
    ]
    return names[signal] ?? "signal \(signal)"
}

/// CPU time a child used (from `wait4`), for the repro's "the paused server's CPU stayed low".
public struct ResourceUsage: Sendable, Equatable, Codable {
    public var userSeconds: Double
    public var systemSeconds: Double
    public var cpuSeconds: Double { userSeconds + systemSeconds }

    public init(userSeconds: Double, systemSeconds: Double) {
        self.userSeconds = userSeconds
        self.systemSeconds = systemSeconds
    }

    init(_ usage: rusage) {
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        self.init(userSeconds: seconds(usage.ru_utime), systemSeconds: seconds(usage.ru_stime))
    }

    enum CodingKeys: String, CodingKey {
        case userSeconds = "user_s"
        case systemSeconds = "system_s"
    }
}

/// A child could not be started; the text names the problem.
package struct ChildProcessError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One spawned child: its pid, signals, and its end (status and CPU time), reaped exactly once.
package final class ChildProcess: Sendable {
    public let pid: pid_t
    private let ended = Locked<(status: ExitStatus, usage: ResourceUsage)?>(nil)

    private init(pid: pid_t) { self.pid = pid }

    /// The running binary, to start a copy of ourselves.
    public static let currentExecutable = "/proc/self/exe"

    /// Starts `executable` with `arguments` (not including argv[0]).
    ///
    /// - `descriptors`: child descriptor → parent descriptor, e.g. `[3: pipeWriteEnd, 2: stderrPipe]`;
    ///   each is `dup2`ed in the child (so it is inherited without close-on-exec). Standard input is
    ///   /dev/null; standard output is /dev/null unless mapped.
    /// - The child starts with SIGINT, SIGTERM and SIGPIPE at their defaults, no signal blocked, in a
    ///   process group of its own (`newProcessGroup`), so a Ctrl-C reaches only the parent, which
    ///   forwards it in the order it chooses (the repro stops its clients before its server).
    public static func spawn(executable: String = currentExecutable, argument0: String = "ringstorm",
                             arguments: [String], descriptors: [Int32: Int32] = [:],
                             newProcessGroup: Bool = true, environment: [String: String] = [:]) throws(ChildProcessError) -> ChildProcess {
        // dup2(a, a) would keep close-on-exec, and one mapping could overwrite another's source: hand
        // the child copies numbered above every target.
        let floor = (descriptors.keys.max() ?? 2) + 1
        var sources: [(child: Int32, parent: Int32)] = []
        defer { for s in sources { SystemCall.close(s.parent) } }
        for (child, parent) in descriptors.sorted(by: { $0.key < $1.key }) {
            do {
                sources.append((child, try SystemCall.duplicate(parent, atLeast: max(floor, 3))))
            } catch {
                throw ChildProcessError("cannot hand descriptor \(parent) to a child: \(error)")
            }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if descriptors[1] == nil { posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0) }
        for s in sources { posix_spawn_file_actions_adddup2(&actions, s.parent, s.child) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        if newProcessGroup { flags |= Int32(POSIX_SPAWN_SETPGROUP) }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        if newProcessGroup { posix_spawnattr_setpgroup(&attributes, 0) }

        let argv: [UnsafeMutablePointer<CChar>?] = ([argument0] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        // This environment, plus (or overridden by) `environment`.
        var inherited: [UnsafeMutablePointer<CChar>?] = []
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            let name = text.prefix { $0 != "=" }
            if environment[String(name)] == nil { inherited.append(strdup(entry)) }
            p += 1
        }
        let envp = inherited + environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        var pid: pid_t = 0
        let result = argv.withUnsafeBufferPointer { args in
            envp.withUnsafeBufferPointer { env in
                posix_spawn(&pid, executable, &actions, &attributes, args.baseAddress!, env.baseAddress!)
            }
        }
        guard result == 0 else {
            throw ChildProcessError("cannot start \(executable): \(Errno(rawValue: result))")
        }
        return ChildProcess(pid: pid)
    }

    /// Sends `signal`; nothing once the child has been reaped (its pid may belong to someone else).
    public func send(_ signal: Int32) {
        ended.withLock { state in
            if state == nil { _ = kill(pid, signal) }
        }
    }

    /// Whether it has been reaped.
    public var status: ExitStatus? { ended.withLock { $0?.status } }

    /// CPU time used, once reaped.
    public var usage: ResourceUsage? { ended.withLock { $0?.usage } }

    /// Reaps the child if it has ended (without blocking); its status, or nil while it runs.
    @discardableResult
    public func poll() -> ExitStatus? { reap(options: WNOHANG) }

    /// Waits for the child to end.
    @discardableResult
    public func wait() -> ExitStatus {
        if let status { return status }
        // Block until it ends without reaping it (WNOWAIT) and without the lock, so a signal sent from
        // another thread meanwhile is not held up; the pid cannot be reused before the reap below.
        var info = siginfo_t()
        _ = try? SystemCall.run { waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) }
        return reap(options: 0) ?? .exited(-1)
    }

    private func reap(options: Int32) -> ExitStatus? {
        ended.withLock { state in
            if let state { return state.status }
            var raw: Int32 = 0
            var usage = rusage()
            let result: pid_t
            do {
                result = try SystemCall.run { wait4(pid, &raw, options, &usage) }
            } catch {
                // ECHILD: someone else reaped it; nothing more can be learned.
                state = (.exited(-1), ResourceUsage(userSeconds: 0, systemSeconds: 0))
                return state!.status
            }
            guard result == pid else { return nil }
            state = (ExitStatus(waitStatus: raw), ResourceUsage(usage))
            return state!.status
        }
    }
}

/// Reads whole lines from a non-blocking descriptor (the read end of a pipe).
final class LineReader {
    let fd: Int32
    private var pending: [UInt8] = []
    private(set) var atEnd = false
    /// A line longer than this is cut (a worker's report is well under it).
    private static let maximumLine = 64 << 20

    init(fd: Int32) { self.fd = fd }

    deinit { SystemCall.close(fd) }

    /// Everything readable now, as complete lines (without the newline); sets `atEnd` at EOF (then a
    /// last unterminated line is returned too).
    func readLines() -> [String] {
        guard !atEnd else { return [] }
        var lines: [String] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                pending.append(contentsOf: chunk[0..<n])
                split(into: &lines)
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            atEnd = true  // 0 (EOF) or an error: nothing more will come
            if !pending.isEmpty {
                lines.append(String(decoding: pending, as: UTF8.self))
                pending.removeAll()
            }
            break
        }
        return lines
    }

    private func split(into lines: inout [String]) {
        var start = 0
        while let newline = pending[start...].firstIndex(of: 0x0A) {
            lines.append(String(decoding: pending[start..<newline], as: UTF8.self))
            start = newline + 1
        }
        if start > 0 { pending.removeFirst(start) }
        if pending.count > Self.maximumLine {
            lines.append(String(decoding: pending, as: UTF8.self))
            pending.removeAll()
        }
    }
}
