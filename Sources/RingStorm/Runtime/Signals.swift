import Glibc

/// SIGINT and SIGTERM, taken synchronously: blocked in every thread (threads inherit the mask, so
/// call `blockTerminationSignals` before starting any) and collected by the main thread with a
/// timeout, which doubles as the tick for the live progress line.
package enum TerminationSignals {
    public static func block() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Waits up to `nanoseconds` for SIGINT or SIGTERM; returns the signal, or nil on timeout.
    public static func wait(nanoseconds: Int64) -> Int32? {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        var timeout = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        let signal = sigtimedwait(&set, nil, &timeout)
        return signal > 0 ? signal : nil
    }
}
