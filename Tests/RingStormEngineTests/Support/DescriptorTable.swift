import Glibc
import RingStormEngine

/// Descriptor exhaustion without touching the process: the calling thread gets a private descriptor
/// table (`unshare(CLONE_FILES)`) holding only 0, 1 and 2, and fills it up to RLIMIT_NOFILE. The next
/// descriptor this thread (or an io_uring operation it runs) allocates fails with EMFILE, while every
/// other thread of the test process keeps its own table and its own limit untouched. This replaces
/// lowering the process-wide soft RLIMIT_NOFILE, which would make tests on other threads (the other
/// test target runs in the same process) fail with EMFILE too.
///
/// Call it only on a thread made for the purpose (`onDedicatedThread`): the table stays private until
/// the thread exits.
enum DescriptorTable {
    private typealias CloseRange = @convention(c) (UInt32, UInt32, Int32) -> Int32
    private static let closeRangeUnshare: Int32 = 1 << 1 // CLOSE_RANGE_UNSHARE

    /// Gives this thread a private descriptor table with only 0, 1, 2 open (`close_range(3, ~0,
    /// CLOSE_RANGE_UNSHARE)`: unshare and close in one call; the other threads' descriptors stay open
    /// in their table). Nil on success.
    static func makePrivate() -> Errno? {
        guard let symbol = dlsym(nil, "close_range") else { return .noSystem }
        let closeRange = unsafeBitCast(symbol, to: CloseRange.self)
        return closeRange(3, .max, closeRangeUnshare) == 0 ? nil : .current
    }

    /// Opens descriptors (on /dev/null) until the table is full; returns them for `release`, and the
    /// errno that stopped it (EMFILE when the table is full).
    static func fill() -> (filler: [Int32], stoppedBy: Errno) {
        var filler: [Int32] = []
        filler.reserveCapacity(Int(softLimit))
        let base = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard base >= 0 else { return ([], .current) }
        filler.append(base)
        while true {
            let fd = dup(base)
            if fd < 0 { return (filler, .current) }
            filler.append(fd)
        }
    }

    static func release(_ filler: [Int32]) {
        for fd in filler { close(fd) }
    }

    static var softLimit: rlim_t {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        return limit.rlim_cur
    }
}
