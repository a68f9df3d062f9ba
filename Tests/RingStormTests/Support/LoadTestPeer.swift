import Foundation
import Glibc
import RingStormEngine

/// What an in-test peer does with the one connection it accepts (plain blocking Glibc sockets).
enum PeerBehaviour: String, Sendable, CaseIterable {
    /// Waits until the client's request is in its receive buffer, then closes without reading: RST.
    case closeWithUnreadData
    /// Reads the request, then closes: FIN.
    case readAllThenClose
    /// Reads the request, sets `SO_LINGER {1, 0}`, closes: RST.
    case lingerZeroClose
    /// Reads the request and never answers (holds the connection until the client goes).
    case neverAnswer
    /// Accepts and closes without reading, whatever the client sent (nothing, for a silent client): FIN.
    /// It waits 100 ms first, so the client has seen its connect complete (an RST that beats the client's
    /// connect completion is, correctly, a `connect/reset`).
    case closeAtOnce
    /// Accepts, waits 100 ms, sets `SO_LINGER {1, 0}` and closes: RST.
    case lingerZeroAtOnce
    /// Accepts, sends a few bytes, then closes: data, then FIN.
    case sendThenClose
}

/// A listening socket on 127.0.0.1 with a kernel-chosen port, and optionally a thread that accepts one
/// connection and behaves as told. Every blocking call is bounded by `poll` timeouts.
final class LoadTestPeer: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)

    /// `backlog` small and `accepting` false: a listener that never accepts.
    init(backlog: Int32 = 16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        precondition(fd >= 0, "socket: \(Errno.current)")
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        sin.sin_port = 0
        let bound = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(bound == 0, "bind: \(Errno.current)")
        precondition(Glibc.listen(fd, backlog) == 0, "listen: \(Errno.current)")
        var storage = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: storage.sin_port)
    }


    var address: SocketAddress { SocketAddress(ipv4Value: 0x7F00_0001, port: port) }

    /// A port with nothing listening: bound, then closed.
    static func closedPort() -> UInt16 {
        let peer = LoadTestPeer()
        let port = peer.port
        peer.closeListener()
        return port
    }

    /// Accepts one connection on a thread and behaves as told.
    func serveOne(_ behaviour: PeerBehaviour) {
        let fd = fd
        let done = done
        let thread = Thread {
            defer { done.signal() }
            guard Self.waitReadable(fd, milliseconds: 5000) else { return }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            var buffer = [UInt8](repeating: 0, count: 4096)
            switch behaviour {
            case .closeAtOnce:
                usleep(100_000)
                Glibc.close(client)
                return
            case .lingerZeroAtOnce:
                usleep(100_000)
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                Glibc.close(client)
                return
            case .sendThenClose:
                _ = Glibc.send(client, "hello\r\n", 7, Int32(MSG_NOSIGNAL))
                usleep(50_000)
                Glibc.close(client)
                return
            default:
                break
            }
            guard Self.waitReadable(client, milliseconds: 5000) else { Glibc.close(client); return }
            switch behaviour {
            case .closeWithUnreadData:
                Glibc.close(client)
            case .readAllThenClose:
                _ = recv(client, &buffer, buffer.count, 0)
                Glibc.close(client)
            case .lingerZeroClose:
                _ = recv(client, &buffer, buffer.count, 0)
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                Glibc.close(client)
            case .neverAnswer:
                // Read whatever comes, answer nothing, until the client closes (or 5 s).
                let until = monotonicNanoseconds() + 5_000_000_000
                while monotonicNanoseconds() < until {
                    guard Self.waitReadable(client, milliseconds: 100) else { continue }
                    if recv(client, &buffer, buffer.count, 0) <= 0 { break }
                }
                Glibc.close(client)
            case .closeAtOnce, .lingerZeroAtOnce, .sendThenClose:
                break
            }
        }
        self.thread = thread
        thread.start()
    }

    /// Waits for the serving thread (bounded).
    func finish() {
        if thread != nil { _ = done.wait(timeout: .now() + 10) }
        closeListener()
    }

    private var listenerClosed = false
    func closeListener() {
        guard !listenerClosed else { return }
        listenerClosed = true
        Glibc.close(fd)
    }

    static func waitReadable(_ fd: Int32, milliseconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return Glibc.poll(&p, 1, milliseconds) == 1
    }
}
