import Foundation
import Glibc
import RingStorm
import RingStormEngine

extension RingStormServer.Configuration {
    /// Loopback, port 0, progress published every tick so tests see counts quickly.
    static func testing(_ backend: Backend) -> Self {
        var c = Self(listen: try! SocketAddress(parsing: "127.0.0.1:0"))
        c.backend = backend
        c.reportInterval = .milliseconds(100)
        c.engine.maxConnections = 1024
        c.engine.receiveBufferCount = 256
        c.engine.submissionQueueEntries = 256
        c.engine.completionQueueEntries = 1024
        return c
    }
}

struct ServerTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs blocking socket code on a thread of its own, so the cooperative pool stays free.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass (then throws); `seconds` is scaled
/// by `sanitizerScale` under a sanitizer.
func waitUntil(seconds: Double = 3, _ condition: () -> Bool) async throws {
    let deadline = monotonicNanoseconds() + Int64(seconds * sanitizerScale * 1e9)
    while !condition() {
        if monotonicNanoseconds() > deadline { throw ServerTestError("condition not met within \(seconds) s") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// A frame as the tests compare them (owned bytes; ERROR compared by code only).
enum ServerTestFrame: Equatable {
    case register(clientID: UInt64)
    case registered(clientID: UInt64)
    case request(sequence: UInt64, timestamp: UInt64, payload: [UInt8])
    case response(sequence: UInt64, timestamp: UInt64, payload: [UInt8])
    case error(code: UInt16)

    init(_ frame: Frame) {
        switch frame {
        case .register(let id): self = .register(clientID: id)
        case .registered(let id): self = .registered(clientID: id)
        case .request(let s, let t, let p): self = .request(sequence: s, timestamp: t, payload: Array(p))
        case .response(let s, let t, let p): self = .response(sequence: s, timestamp: t, payload: Array(p))
        case .error(let code, _): self = .error(code: code)
        }
    }

    /// Encoded with the library's encoder.
    var bytes: [UInt8] {
        var buffer = FrameBuffer()
        switch self {
        case .register(let id): buffer.appendRegister(clientID: id)
        case .registered(let id): buffer.appendRegistered(clientID: id)
        case .request(let s, let t, let p):
            p.withUnsafeBytes { raw in
                buffer.append(reserving: WireFormat.requestFrameSize(payloadSize: p.count)) {
                    FrameEncoder.encodeRequest(sequence: s, timestamp: t, payload: raw, into: $0)
                }
            }
        case .response(let s, let t, let p): p.withUnsafeBytes { buffer.appendResponse(sequence: s, timestamp: t, payload: $0) }
        case .error(let code): buffer.appendError(code: code, text: "")
        }
        return buffer.withBytes { Array($0) }
    }
}

/// What one `recv` gave.
enum ServerTestReceived: Equatable {
    case data([UInt8])
    /// `recv` returned 0: FIN.
    case endOfStream
    /// The receive timeout passed with nothing.
    case wouldBlock
    case failed(Errno)
}

/// A blocking IPv4 loopback client with a receive timeout, decoding frames with the library's decoder.
final class ServerTestClient: @unchecked Sendable {
    private(set) var fd: Int32
    private var decoder = FrameDecoder()
    private var frames: [ServerTestFrame] = []

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerTestError("socket: \(Errno.current.name)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let e = Errno.current
            Glibc.close(fd)
            throw ServerTestError("connect to port \(port): \(e.name)")
        }
        receiveTimeout(seconds: 3)
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    func receiveTimeout(seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func send(frame: ServerTestFrame) { send(bytes: frame.bytes) }

    /// Waits until the peer's kernel has acknowledged everything sent (TCP_INFO `tcpi_unacked` 0), so a
    /// test knows the bytes sit in the server's receive queue even on a machine too busy to run the
    /// loopback softirq at once. Returns false after `timeout` seconds.
    @discardableResult
    func waitUntilAcknowledged(timeout: Double = 3) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            var info = tcp_info()
            var length = socklen_t(MemoryLayout<tcp_info>.size)
            if getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 && info.tcpi_unacked == 0 { return true }
            usleep(2_000)
        } while Date() < deadline
        return false
    }

    /// One `recv` of up to `count` bytes.
    func receive(count: Int = 65_536) -> ServerTestReceived {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count, 0) }
        if n > 0 { return .data(Array(buffer[0..<n])) }
        if n == 0 { return .endOfStream }
        let e = Errno.current
        return e == .wouldBlock ? .wouldBlock : .failed(e)
    }

    /// The next whole frame (throws on EOF, error or timeout before one arrives).
    func receiveFrame() throws -> ServerTestFrame {
        while frames.isEmpty {
            switch receive() {
            case .data(let bytes):
                var decoded: [ServerTestFrame] = []
                try bytes.withUnsafeBytes { raw throws(ProtocolError) in
                    try decoder.feed(raw) { frame in decoded.append(ServerTestFrame(frame)) }
                }
                frames += decoded
            case let other:
                throw ServerTestError("expected a frame, got \(other)")
            }
        }
        return frames.removeFirst()
    }
}

/// The `ringstorm` executable next to the test bundle, if it was built.
let ringstormBinary: String? = {
    guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
    var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = directory.appendingPathComponent("ringstorm").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return nil
}()

/// `ringstorm serve --protocol PROTOCOL` as a child process on a kernel-chosen port, with the given
/// extra arguments; `stop` sends SIGTERM and reads its JSON report.
final class ServerChild: @unchecked Sendable {
    let process = Process()
    let port: UInt16
    let jsonPath: String
    private let output = Pipe()

    init(_ arguments: [String], protocol kind: ServerProtocolKind = .ringstorm) throws {
        jsonPath = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-server-\(UUID()).json").path
        process.executableURL = URL(fileURLWithPath: ringstormBinary!)
        process.arguments = ["serve", "--protocol", kind.rawValue, "--listen", "127.0.0.1:0", "--report-interval", "0",
                             "--json", jsonPath] + arguments
        // The banner goes to standard error, the report to standard output.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = output
        try process.run()
        // The banner: "ringstorm serve: PROTOCOL on 127.0.0.1:PORT, ..."
        var banner = ""
        let handle = output.fileHandleForReading
        while !banner.contains("\n") {
            let data = handle.availableData
            if data.isEmpty { break }
            banner += String(decoding: data, as: UTF8.self)
        }
        guard let range = banner.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = UInt16(banner[range].split(separator: ":").last!) else {
            process.terminate()
            throw ServerTestError("no address in the server's banner: \(banner)")
        }
        self.port = port
    }

    /// The child's CPU time (user + system) over `seconds` of wall time.
    func cpuSeconds(over seconds: Double) -> Double {
        var clock = clockid_t()
        guard clock_getcpuclockid(process.processIdentifier, &clock) == 0 else { return .infinity }
        func read() -> Double {
            var t = timespec()
            clock_gettime(clock, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }
        let before = read()
        usleep(UInt32(seconds * 1e6))
        return read() - before
    }

    /// SIGTERM, wait, and the report the server wrote.
    func stop() throws -> ServerReport {
        process.terminate()
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(atPath: jsonPath) }
        guard process.terminationStatus == 0 else { throw ServerTestError("server exited with status \(process.terminationStatus)") }
        return try ServerReport(json: Data(contentsOf: URL(fileURLWithPath: jsonPath)))
    }

    func terminate() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: jsonPath)
    }
}
