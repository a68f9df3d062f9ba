import CURing
import Glibc

/// A POSIX error number, named the way the kernel's headers name it.
///
/// Every failure RingStorm reports carries one of these rather than a message string, so counts can be
/// keyed by it and reports can print the symbolic name users grep for (`ECONNRESET`, not "error 104").
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The symbolic name, e.g. `EMFILE`; `E<number>` for a value glibc does not know.
    public var name: String {
        guard let cName = curing_errno_name(rawValue) else { return "E\(rawValue)" }
        return String(cString: cName)
    }

    /// The human sentence from `strerror`, e.g. "Too many open files".
    public var message: String { String(cString: strerror(rawValue)) }

    public var description: String { "\(name) (\(message))" }

    /// The current thread's `errno`.
    public static var current: Errno { Errno(rawValue: errno) }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let inProgress = Errno(rawValue: EINPROGRESS)
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let addressNotAvailable = Errno(rawValue: EADDRNOTAVAIL)
    public static let addressInUse = Errno(rawValue: EADDRINUSE)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let fileTableFull = Errno(rawValue: ENFILE)
    public static let noBuffers = Errno(rawValue: ENOBUFS)
    public static let cancelled = Errno(rawValue: ECANCELED)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let notPermitted = Errno(rawValue: EPERM)
    public static let notSupported = Errno(rawValue: EOPNOTSUPP)
    public static let noSystem = Errno(rawValue: ENOSYS)

    /// Converts the `-errno` convention of io_uring completions and liburing calls.
    @inline(__always)
    public static func fromNegated(_ result: Int32) -> Errno { Errno(rawValue: -result) }
}
