import CURing
import Glibc

/// Each system call the engine makes, wrapped once: counted, `EINTR` retried here and nowhere else,
/// failures returned as a typed `Errno`.
extension Counters {
    @inline(__always)
    package func call<T: BinaryInteger>(_ kind: Syscall, _ body: () -> T) -> Result<T, Errno> {
        while true {
            record(kind)
            let result = body()
            if result >= 0 { return .success(result) }
            let error = Errno.current
            if error != .interrupted { return .failure(error) }
        }
    }

    /// `close` is never retried: on Linux the descriptor is gone even when it reports EINTR.
    package func close(_ fd: Int32) {
        record(.close)
        _ = Glibc.close(fd)
    }

    package func socket(family: Int32, type: Int32) -> Result<Int32, Errno> {
        call(.socket) { Glibc.socket(family, type | Int32(SOCK_CLOEXEC.rawValue), 0) }
    }

    package func setOption<T>(_ fd: Int32, level: Int32, name: Int32, value: T) -> Result<Void, Errno> {
        var value = value
        return call(.setsockopt) { setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<T>.size)) }.map { _ in () }
    }

    package func setFlag(_ fd: Int32, level: Int32, name: Int32, _ on: Bool = true) -> Result<Void, Errno> {
        setOption(fd, level: level, name: name, value: Int32(on ? 1 : 0))
    }

    /// The pending socket error (`SO_ERROR`), which reading clears: used only to learn a connect's result.
    package func pendingError(_ fd: Int32) -> Result<Int32, Errno> {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return call(.getsockopt) { getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) }.map { _ in value }
    }

    /// Makes the next close send RST instead of FIN (`SO_LINGER {1, 0}`).
    package func setAbortiveClose(_ fd: Int32) -> Result<Void, Errno> {
        setOption(fd, level: SOL_SOCKET, name: SO_LINGER, value: linger(l_onoff: 1, l_linger: 0))
    }

    package func bind(_ fd: Int32, to address: SocketAddress) -> Result<Void, Errno> {
        address.withSockAddr { sa, len in call(.bind) { Glibc.bind(fd, sa, len) } }.map { _ in () }
    }

    package func listen(_ fd: Int32, backlog: Int32) -> Result<Void, Errno> {
        call(.listen) { Glibc.listen(fd, backlog) }.map { _ in () }
    }

    package func connect(_ fd: Int32, to address: SocketAddress) -> Result<Void, Errno> {
        address.withSockAddr { sa, len in call(.connect) { Glibc.connect(fd, sa, len) } }.map { _ in () }
    }

    package func accept(_ fd: Int32) -> Result<Int32, Errno> {
        call(.accept) { accept4(fd, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)) }
    }

    package func receive(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> Result<Int, Errno> {
        call(.recv) { recv(fd, buffer, count, 0) }
    }

    package func send(_ fd: Int32, from buffer: UnsafeRawPointer, count: Int) -> Result<Int, Errno> {
        call(.send) { Glibc.send(fd, buffer, count, Int32(MSG_NOSIGNAL)) }
    }

    package func shutdown(_ fd: Int32, _ how: Int32) -> Result<Void, Errno> {
        call(.shutdown) { Glibc.shutdown(fd, how) }.map { _ in () }
    }

    package func localAddress(_ fd: Int32) -> SocketAddress? {
        var address = SocketAddress()
        let ok = address.withMutableSockAddr { sa, len in call(.other) { getsockname(fd, sa, len) } }
        guard case .success = ok else { return nil }
        return address
    }
}
