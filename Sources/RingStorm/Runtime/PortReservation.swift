import Glibc
import RingStormEngine

/// One port for several `SO_REUSEPORT` listeners: the threads of one server, or the worker processes
/// of `serve --processes N`.
///
/// Each worker opens its own `SO_REUSEPORT` listener on the same address and the kernel spreads incoming
/// connections over them. With port 0 each would get a different port, so a socket of our own is bound
/// first (with `SO_REUSEPORT`, never listening: the kernel hands connections only to listening sockets)
/// and its concrete port handed to the workers. Holding it for the run keeps anyone else from taking
/// the port in between.
///
/// `exclusive` first binds without `SO_REUSEPORT`: otherwise a port already served by another process's
/// `SO_REUSEPORT` group (another ringstorm with threads, say) would be joined silently and the traffic
/// split with it. That check fails with one clear line before any worker starts.
package final class PortReservation: Sendable {
    /// The address with its concrete port.
    public let address: SocketAddress
    private let fd: Int32

    public init(_ requested: SocketAddress, exclusive: Bool = true) throws(ServerError) {
        var target = requested
        if exclusive {
            // Learns the port for port 0 too; closed again at once (the window until the bind below is
            // the only one in which another process could take the port).
            let probe = try Self.bind(target, reusePort: false)
            target.port = probe.address.port
            SystemCall.close(probe.fd)
        }
        (fd, address) = try Self.bind(target, reusePort: true)
    }

    deinit { SystemCall.close(fd) }

    private static func bind(_ address: SocketAddress, reusePort: Bool) throws(ServerError) -> (fd: Int32, address: SocketAddress) {
        let fd: Int32
        do {
            fd = try SystemCall.run { socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        } catch {
            throw .invalidConfiguration("cannot open a socket to reserve \(address): \(error)")
        }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        var bound = SocketAddress()
        let bindResult = address.withSockAddr { sa, length in
            Result { () throws(Errno) in try SystemCall.run { Glibc.bind(fd, sa, length) } }
        }
        let nameResult = bound.withMutableSockAddr { sa, length in
            Result { () throws(Errno) in try SystemCall.run { getsockname(fd, sa, length) } }
        }
        for case .failure(let error) in [bindResult, nameResult] {
            SystemCall.close(fd)
            // The engine's own bind failure, so every front end words it as it words a listener's.
            throw .engine(EngineError("cannot bind \(address)", error, reason: .bindFailed(address)))
        }
        return (fd, bound)
    }
}
