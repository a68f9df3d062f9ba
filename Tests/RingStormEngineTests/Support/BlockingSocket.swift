import Glibc
import RingStormEngine

/// A failed call on a test peer's socket, with the errno behind it when there is one.
struct SocketError: Error, CustomStringConvertible {
    let call: String
    let errno: Errno?

    init(_ call: String, _ errno: Errno? = .current) {
        self.call = call
        self.errno = errno
    }

    var description: String { errno.map { "\(call): \($0.name)" } ?? call }
}

/// What one `recv` gave.
enum Received: Equatable, Sendable {
    case data([UInt8])
    /// `recv` returned 0: the engine's side sent FIN.
    case endOfStream
    /// Nothing there yet (a non-blocking read, or the receive timeout passed).
    case wouldBlock
    case failed(Errno)
}

/// Fills a `sockaddr_storage` from a `SocketAddress` through its public parts only (host text and
/// port), so the helpers do not depend on the engine's internals.
func withSocketAddress<R>(_ address: SocketAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var storage = sockaddr_storage()
    let length: socklen_t
    if address.isIPv6 {
        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        sin6.sin6_port = address.port.bigEndian
        precondition(inet_pton(AF_INET6, address.host, &sin6.sin6_addr) == 1)
        withUnsafeBytes(of: sin6) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
        length = socklen_t(MemoryLayout<sockaddr_in6>.size)
    } else {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = address.port.bigEndian
        precondition(inet_pton(AF_INET, address.host, &sin.sin_addr) == 1)
        withUnsafeBytes(of: sin) { src in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: src) } }
        length = socklen_t(MemoryLayout<sockaddr_in>.size)
    }
    return withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
}

/// The port a socket is bound to (`getsockname`).
func boundPort(of fd: Int32) -> UInt16? {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let ok = withUnsafeMutableBytes(of: &storage) { raw in
        getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) == 0
    }
    guard ok else { return nil }
    return withUnsafeBytes(of: storage) { raw in
        Int32(storage.ss_family) == AF_INET6
            ? UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
            : UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
    }
}

/// A plain blocking TCP socket for the far end of a test: no engine involved. Every blocking call is
/// bounded by `SO_RCVTIMEO`/`SO_SNDTIMEO`, so a peer never hangs a test. Closed on deinit.
final class BlockingSocket {
    private(set) var fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { close() }

    /// An unconnected socket of `address`'s family; `timeoutSeconds` bounds every later blocking call.
    init(for address: SocketAddress, timeoutSeconds: Int = 5) throws(SocketError) {
        fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        setTimeout(seconds: timeoutSeconds)
    }

    /// Connects to `address`; `timeoutSeconds` bounds the connect and every later send and receive.
    static func connect(to address: SocketAddress, timeoutSeconds: Int = 5) throws(SocketError) -> BlockingSocket {
        let s = try BlockingSocket(for: address, timeoutSeconds: timeoutSeconds)
        try s.connect(to: address)
        return s
    }

    func connect(to address: SocketAddress) throws(SocketError) {
        let fd = self.fd
        let rc = withSocketAddress(address) { sa, len in
            var rc: Int32
            repeat { rc = Glibc.connect(fd, sa, len) } while rc < 0 && errno == EINTR
            return rc
        }
        guard rc == 0 else { throw SocketError("connect to \(address)") }
    }

    /// Starts a non-blocking connect and returns at once (for filling an accept queue).
    static func startConnect(to address: SocketAddress) throws(SocketError) -> BlockingSocket {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        let s = BlockingSocket(fd: fd)
        let rc = withSocketAddress(address) { sa, len in Glibc.connect(fd, sa, len) }
        guard rc == 0 || errno == EINPROGRESS else { throw SocketError("connect to \(address)") }
        return s
    }

    func setTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends every byte, in pieces of at most `chunk` bytes (blocking, bounded by the send timeout).
    func sendAll(_ bytes: [UInt8], chunk: Int = .max) throws(SocketError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, min(chunk, bytes.count - offset), Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw SocketError("send (\(offset) of \(bytes.count) bytes sent)")
            }
            offset += n
        }
    }

    /// Sends what the kernel takes now without blocking; returns the count (0 when its buffer is full).
    func trySend(_ bytes: ArraySlice<UInt8>) throws(SocketError) -> Int {
        guard !bytes.isEmpty else { return 0 }
        let n = bytes.withUnsafeBytes { raw in
            Glibc.send(fd, raw.baseAddress!, raw.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
        if n >= 0 { return n }
        if errno == EAGAIN || errno == EINTR { return 0 }
        throw SocketError("send")
    }

    /// One `recv` of up to `max` bytes; blocking (bounded by the receive timeout) unless `wait` is false.
    func receive(max: Int = 65_536, wait: Bool = true) -> Received {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, max, wait ? 0 : Int32(MSG_DONTWAIT)) }
            if n > 0 { return .data(Array(buffer[..<n])) }
            if n == 0 { return .endOfStream }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            default: return .failed(.current)
            }
        }
    }

    /// Bytes waiting to be read, without consuming them (`MSG_PEEK`, non-blocking).
    func availableBytes() -> Int {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) }
        return max(n, 0)
    }

    /// Receives exactly `count` bytes (blocking, bounded by the receive timeout).
    func receiveExactly(_ count: Int) throws(SocketError) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        while result.count < count {
            switch receive(max: min(count - result.count, 1 << 20)) {
            case .data(let d): result += d
            case .endOfStream: throw SocketError("recv: end of stream after \(result.count) of \(count) bytes", nil)
            case .wouldBlock: throw SocketError("recv: timed out after \(result.count) of \(count) bytes", nil)
            case .failed(let e): throw SocketError("recv after \(result.count) of \(count) bytes", e)
            }
        }
        return result
    }

    /// Reads until the stream ends, fails, or the receive timeout passes; returns the bytes and how it ended.
    func receiveUntilEnd() -> (bytes: [UInt8], end: Received) {
        var bytes: [UInt8] = []
        while true {
            switch receive() {
            case .data(let d): bytes += d
            case let end: return (bytes, end)
            }
        }
    }

    /// `SO_LINGER {1, 0}`: the next close sends RST instead of FIN.
    func setAbortiveClose() {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    /// Closes with RST (`SO_LINGER {1, 0}` then close).
    func reset() {
        setAbortiveClose()
        close()
    }

    func shutdownWrite() {
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }
}

/// A TCP port on 127.0.0.1 (or ::1) that nothing listens on: a socket bound to port 0 and never put
/// in listening state, so the kernel answers SYNs with RST. Keep the value alive while it is used.
final class ClosedPort {
    let fd: Int32
    let address: SocketAddress

    init(ipv6: Bool = false) throws {
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        self.fd = fd
        var any = try SocketAddress(parsing: ipv6 ? "[::1]:0" : "127.0.0.1:0")
        guard withSocketAddress(any, { bind(fd, $0, $1) }) == 0, let port = boundPort(of: fd) else {
            Glibc.close(fd)
            throw SocketError("bind")
        }
        any.port = port
        address = any
    }

    deinit { Glibc.close(fd) }
}

/// A listening socket that is never accepted from, with its accept queue filled (backlog 0 holds one
/// connection), so a further SYN is dropped and a connect to it stays pending.
final class FullListener {
    let fd: Int32
    let address: SocketAddress
    private var fillers: [BlockingSocket] = []

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        self.fd = fd
        var any = try SocketAddress(parsing: "127.0.0.1:0")
        guard withSocketAddress(any, { bind(fd, $0, $1) }) == 0, listen(fd, 0) == 0, let port = boundPort(of: fd) else {
            Glibc.close(fd)
            throw SocketError("bind/listen")
        }
        any.port = port
        address = any
        // The first handshake completes and fills the queue; the others stay in SYN_SENT.
        for _ in 0..<3 {
            fillers.append(try BlockingSocket.startConnect(to: address))
            usleep(20_000)
        }
    }

    deinit {
        fillers.removeAll()
        Glibc.close(fd)
    }
}

/// Deterministic pseudo-random bytes (xorshift64, eight bytes a step), different for each seed: an
/// echo that reorders, drops or duplicates a piece cannot reproduce them.
func payload(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15
    if x == 0 { x = 1 }
    var out = [UInt8](repeating: 0, count: (count + 7) & ~7)
    out.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in words.indices {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            words[i] = x
        }
    }
    out.removeLast(out.count - count)
    return out
}

/// Where two byte arrays first differ (nil when equal), for a readable failure message.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
    if a == b { return nil }
    for i in 0..<min(a.count, b.count) where a[i] != b[i] { return i }
    return min(a.count, b.count)
}
