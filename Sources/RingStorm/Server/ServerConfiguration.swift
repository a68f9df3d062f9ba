import RingStormEngine

/// What a server speaks on its connections.
public enum ServerProtocol: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Length-prefixed frames: REGISTER, then REQUESTs answered with RESPONSEs (`Docs/protocol.md`).
    case ringstorm
    /// Raw bytes echoed back (the `EchoServer`).
    case echo

    public var description: String { rawValue }
}

/// What the server does when accept fails for want of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM).
public enum EMFILEPolicy: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Stop accepting until a connection closes or a backoff passes; queued clients wait, unanswered.
    case pause
    /// The reserve-descriptor trick: accept every queued connection and close it at once (a client whose
    /// data had arrived sees RST, a silent one FIN), then accept again.
    case shed
    /// Retry at once: the busy loop, for demonstration (failed accepts are counted per second).
    case spin

    public var description: String { rawValue }
}

extension RingStormServer {
    /// Everything a server run needs; a plain value a test rig builds and hands to `init(configuration:)`.
    public struct Configuration: Sendable, Codable {
        public var listen: SocketAddress
        public var backend: Backend = .uring
        /// Engine threads, each with its own engine and `SO_REUSEPORT` listener.
        public var threads: Int = 1
        public var `protocol`: ServerProtocol = .ringstorm
        /// A connection that has not sent REGISTER this long after it was accepted gets ERROR
        /// `register_timeout` and is closed. Zero: no limit.
        public var registerTimeout: Duration = .seconds(5)
        /// A registered connection that has sent nothing this long is closed (FIN). Zero: no limit.
        public var idleTimeout: Duration = .seconds(60)
        /// The largest frame `length` (type + body) accepted; larger gets ERROR `frame_too_large`.
        public var maxFrameSize: Int = WireFormat.defaultMaxFrameSize
        /// Lowers the process's soft RLIMIT_NOFILE to this before starting (nil: leave it). The previous
        /// limit is restored when the server has stopped (`wait`).
        public var maxFDs: Int? = nil
        public var onEMFILE: EMFILEPolicy = .pause
        /// How long `pause` waits for a descriptor to free before trying accept again.
        public var pauseBackoff: Duration = .milliseconds(200)
        /// How often workers publish `progress` (at most once a second, at least once per timer tick).
        public var reportInterval: Duration = .seconds(1)
        /// Granularity of the register and idle deadlines: the period of each worker's tick.
        public var tick: Duration = .milliseconds(100)
        public var backlog: Int32 = 4096
        /// `SO_REUSEPORT` on the listener even with one thread, so that other processes can listen on the
        /// same port (`serve --processes N`: the kernel spreads connections over every listener).
        public var reusePort = false
        /// Engine settings; `maxConnections` is set from the descriptor limit when left at 0.
        public var engine: EngineConfiguration = {
            var e = EngineConfiguration()
            e.maxConnections = 0
            return e
        }()

        public init(listen: SocketAddress) { self.listen = listen }

        /// Throws `ServerError.invalidConfiguration` naming the first bad value.
        public func validate() throws(ServerError) {
            func bad(_ text: String) -> ServerError { .invalidConfiguration(text) }
            guard (1...64).contains(threads) else { throw bad("threads must be between 1 and 64, not \(threads)") }
            guard maxFrameSize >= 1 + WireFormat.requestFixedBodySize && maxFrameSize <= Int(UInt32.max) else {
                throw bad("max frame size must be between \(1 + WireFormat.requestFixedBodySize) and \(UInt32.max) bytes, not \(maxFrameSize)")
            }
            guard registerTimeout >= .zero else { throw bad("register timeout cannot be negative") }
            guard idleTimeout >= .zero else { throw bad("idle timeout cannot be negative") }
            guard tick > .zero else { throw bad("tick must be positive") }
            if let maxFDs, maxFDs < 8 {
                throw bad("max fds must be at least 8 (stdin/out/err, the engine and the listener need some), not \(maxFDs)")
            }
        }
    }
}

/// A server that could not start; the text names the problem and the fix.
public enum ServerError: Error, CustomStringConvertible, Sendable {
    case invalidConfiguration(String)
    case descriptorLimit(String)
    case engine(EngineError)

    public var description: String {
        switch self {
        case .invalidConfiguration(let text): text
        case .descriptorLimit(let text): text
        case .engine(let error): error.description
        }
    }
}

extension Duration {
    /// Whole nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return whole &+ attoseconds / 1_000_000_000
    }
}
