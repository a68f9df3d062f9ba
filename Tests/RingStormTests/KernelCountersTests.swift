import Glibc
import RingStormEngine
import Testing
@testable import RingStorm

@Suite struct KernelCountersTests {
    @Test func readsTheKernelsCounters() {
        let c = KernelCounters.read()
        #expect(c.backlogDrops >= 0)
        #expect(c.retransmits >= 0)
        #expect((KernelCounters.read() - c).backlogDrops >= 0)
    }

    /// Closing a socket with unread data makes the kernel reset the connection and count it
    /// (TCPAbortOnClose): the seed's signature, seen from the kernel's side.
    @Test func closingWithUnreadDataIsCountedAsAnAbort() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(listener, sa, length) == 0 && listen(listener, 4) == 0
                    && getsockname(listener, sa, &length) == 0 && connect(client, sa, length) == 0
            }
        }
        try #require(connected, "loopback listen/connect failed: \(Errno.current)")
        let before = KernelCounters.read()
        let bytes = [UInt8](repeating: 7, count: 75)
        #expect(send(client, bytes, bytes.count, 0) == 75)
        let accepted = accept(listener, nil, nil)
        try #require(accepted >= 0)
        // Wait until the 75 bytes are in the accepted socket's queue (on a loaded machine loopback's
        // softirq can run late): only a close with unread data is an abort.
        var ready = pollfd(fd: accepted, events: Int16(POLLIN), revents: 0)
        try #require(poll(&ready, 1, 5_000) == 1, "the 75 bytes never arrived")
        close(accepted)
        let delta = KernelCounters.read() - before
        #expect(delta.abortsOnClose >= 1)
        #expect(delta.explanation.contains { $0.contains("closed with unread data") })
    }
}
