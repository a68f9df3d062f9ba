import Glibc
import RingStormEngine

/// One port for every worker process of `serve --processes N`.
///
/// Each worker opens its own `SO_REUSEPORT` listener on the same address, and the kernel spreads
/// incoming connections over them. With port 0 every worker would get a different port, so the parent
/// first binds a socket of its own with `SO_REUSEPORT` (bound, never listening: the kernel hands
/// connections only to listening sockets) and hands the concrete port to the workers. Holding it for
/// the run keeps the port from being taken by someone else between the probe and the workers' binds,
/// and a port already held by a listener without `SO_REUSEPORT` fails here, with one clear message,
/// before any worker starts.
public final class PortReservation {
    /// The address with its concrete port.
    public let address: SocketAddress
    private let fd: Int32

    public init(_ requested: SocketAddress) throws(ServerError) {
        let fd: Int32
        do {
            fd = try SystemCall.run { socket(requested.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        } catch {
            throw .invalidConfiguration("cannot open a socket to reserve \(requested): \(error)")
        }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        var bound = requested
        do {
            var storage = sockaddr_storage()
            var length = Self.fill(&storage, requested)
            try withUnsafeMutablePointer(to: &storage) { p throws(Errno) in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(Errno) in
                    try SystemCall.run { bind(fd, sa, length) }
                    length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                    try SystemCall.run { getsockname(fd, sa, &length) }
                }
            }
            bound.port = Self.port(of: storage)
        } catch {
            SystemCall.close(fd)
            let hint: String
            switch error {
            case .addressInUse: hint = "another process listens there: pick another port with --listen HOST:PORT, or stop it (ss -ltnp 'sport = :\(requested.port)')"
            case .addressNotAvailable: hint = "\(requested.host) is not an address of this machine: use 127.0.0.1, ::1 or a local address"
            case Errno(rawValue: EACCES): hint = "ports below 1024 need privileges: pick a port above 1023"
            default: hint = "pick another --listen address"
            }
            throw .invalidConfiguration("cannot bind \(requested): \(error); \(hint)")
        }
        self.fd = fd
        address = bound
    }

    deinit { SystemCall.close(fd) }

    /// `address` as a `sockaddr_in`/`sockaddr_in6` in `storage`; its length.
    private static func fill(_ storage: inout sockaddr_storage, _ address: SocketAddress) -> socklen_t {
        withUnsafeMutableBytes(of: &storage) { raw in
            if address.isIPv6 {
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = address.port.bigEndian
                _ = inet_pton(AF_INET6, address.host, &sin6.pointee.sin6_addr)
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
            let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
            sin.pointee.sin_family = sa_family_t(AF_INET)
            sin.pointee.sin_port = address.port.bigEndian
            sin.pointee.sin_addr.s_addr = (address.ipv4Value ?? 0).bigEndian
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        }
    }

    private static func port(of storage: sockaddr_storage) -> UInt16 {
        withUnsafeBytes(of: storage) { raw in
            Int32(storage.ss_family) == AF_INET6 ? UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
                                                 : UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
        }
    }
}
