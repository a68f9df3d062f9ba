import CURing
import Glibc

/// A listening socket and the spare descriptor kept for shedding.
///
/// The reserve-descriptor trick: while descriptors are plentiful, hold one open on /dev/null. When
/// accept fails with EMFILE, close the spare, accept one queued connection, close it at once (the peer
/// sees RST if its data had arrived, FIN if not) and reopen the spare. It trades one queued client for
/// a server that keeps making progress instead of spinning or stalling.
package struct Listener {
    package var fd: Int32
    package var address: SocketAddress
    var reserveFD: Int32 = -1
    /// Accepting stopped on resource exhaustion until the caller resumes it.
    package var paused = false
    /// io_uring: a multishot accept is in the kernel.
    package var armed = false

    package static func open(on address: SocketAddress, backlog: Int32, reusePort: Bool, noDelay: Bool,
                     syscalls: Counters) throws(EngineError) -> Listener {
        let fd: Int32
        switch syscalls.socket(family: address.family, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)) {
        case .success(let s): fd = s
        case .failure(let e): throw EngineError("socket for listening on \(address)", e)
        }
        _ = syscalls.setFlag(fd, level: SOL_SOCKET, name: SO_REUSEADDR)
        if reusePort { _ = syscalls.setFlag(fd, level: SOL_SOCKET, name: SO_REUSEPORT) }
        // Accepted sockets inherit TCP_NODELAY from the listener: one setsockopt here, none per accept.
        if noDelay { _ = syscalls.setFlag(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY) }
        if case .failure(let e) = syscalls.bind(fd, to: address) {
            syscalls.close(fd)
            throw EngineError("cannot bind \(address)", e, reason: .bindFailed(address))
        }
        if case .failure(let e) = syscalls.listen(fd, backlog: backlog) {
            syscalls.close(fd)
            throw EngineError("listen on \(address)", e)
        }
        let bound = syscalls.localAddress(fd) ?? address
        var listener = Listener(fd: fd, address: bound)
        listener.reopenReserve(syscalls)
        return listener
    }

    mutating func reopenReserve(_ syscalls: Counters) {
        guard reserveFD < 0 else { return }
        syscalls.record(.other)
        reserveFD = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    /// One round of the reserve-descriptor trick; true when a queued connection was shed.
    package mutating func shedOne(_ syscalls: Counters) -> Bool {
        if reserveFD >= 0 { syscalls.close(reserveFD); reserveFD = -1 }
        defer { reopenReserve(syscalls) }
        guard case .success(let fd) = syscalls.accept(self.fd) else { return false }
        syscalls.close(fd)
        return true
    }

    package mutating func close(_ syscalls: Counters) {
        if reserveFD >= 0 { syscalls.close(reserveFD); reserveFD = -1 }
        if fd >= 0 { syscalls.close(fd); fd = -1 }
    }
}

/// What to do when binding `address` failed with `error`, in the user's terms (naming no option: a
/// front end words those itself).
public func bindFailureHint(_ error: Errno, _ address: SocketAddress) -> String {
    switch error {
    case .addressInUse: "another process listens there: pick another port, or stop it (ss -ltnp 'sport = :\(address.port)')"
    case .addressNotAvailable: "\(address.host) is not an address of this machine: use 127.0.0.1, ::1 or a local address"
    case Errno(rawValue: EACCES): "ports below 1024 need privileges: pick a port above 1023"
    default: "pick another address to listen on"
    }
}

/// Opens the non-blocking client socket for a connect, bound to `source` if given.
/// - A source without a port: `IP_BIND_ADDRESS_NO_PORT` defers the port choice to connect, so each
///   source address gets its own 28,232 ephemeral ports per destination instead of sharing bind's
///   global pool.
/// - A source with a port (the caller assigns ports itself): `SO_REUSEADDR` lets the bind take a port
///   whose earlier connection waits in TIME_WAIT; connect then checks only that one 4-tuple (and the
///   kernel may reuse the TIME_WAIT one as `net.ipv4.tcp_tw_reuse` allows) instead of searching.
/// - `portRange` (`low | high << 16`, 0 for none) narrows the kernel's search to a slice
///   (`IP_LOCAL_PORT_RANGE`); a kernel that refuses it sets `rangeRefused` and the socket goes on without.
func openClientSocket(to destination: SocketAddress, from source: SocketAddress?, noDelay: Bool,
                      portRange: UInt32, rangeRefused: inout Errno?, syscalls: Counters) throws(Errno) -> Int32 {
    let fd: Int32
    switch syscalls.socket(family: destination.family, type: Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)) {
    case .success(let s): fd = s
    case .failure(let e): throw e
    }
    if noDelay { _ = syscalls.setFlag(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY) }
    let explicitPort = source.map { $0.port != 0 } ?? false
    if portRange != 0 && !explicitPort && !destination.isIPv6 {
        if case .failure(let e) = syscalls.setOption(fd, level: Int32(IPPROTO_IP), name: curing_ip_local_port_range, value: portRange),
           LocalPortRange.isUnsupported(e) {
            rangeRefused = e
        }
    }
    if let source {
        if explicitPort {
            _ = syscalls.setFlag(fd, level: SOL_SOCKET, name: SO_REUSEADDR)
        } else if !source.isIPv6 {
            _ = syscalls.setFlag(fd, level: Int32(IPPROTO_IP), name: IP_BIND_ADDRESS_NO_PORT)
        }
        if case .failure(let e) = syscalls.bind(fd, to: source) {
            syscalls.close(fd)
            throw e
        }
    }
    return fd
}

/// The per-socket ephemeral port range (`IP_LOCAL_PORT_RANGE`, kernel 6.3) as the kernel takes it,
/// and the one decision of when to stop asking for it.
package enum LocalPortRange {
    /// The option's value: the low bound in the lower 16 bits, the high bound in the upper.
    package static func optionValue(_ range: ClosedRange<UInt16>?) -> UInt32 {
        guard let range else { return 0 }
        return UInt32(range.lowerBound) | UInt32(range.upperBound) << 16
    }

    /// A kernel before 6.3 does not know the option (ENOPROTOOPT); one that knows it but not the value
    /// answers EINVAL. Either way asking again for every socket is pointless: fall back to the whole range.
    package static func isUnsupported(_ error: Errno) -> Bool {
        error == Errno(rawValue: ENOPROTOOPT) || error == Errno(rawValue: EINVAL)
    }
}
