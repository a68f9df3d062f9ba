import RingStormEngine

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
        public var `protocol`: ServerProtocolKind = .ringstorm
        /// A connection that has not sent REGISTER this long after it was accepted gets ERROR
        /// `register_timeout` and is closed. Zero: no limit.
        public var registerTimeout: Duration = .seconds(5)
        /// A registered connection that has sent nothing this long is closed (FIN). Zero: no limit.
        public var idleTimeout: Duration = .seconds(60)
        /// The largest frame `length` (type + body) accepted; larger gets ERROR `frame_too_large`.
        public var maxFrameSize: Int = WireFormat.defaultMaxFrameSize
        /// `http` only: body bytes of every `200` answer.
        public var responseSize: Int = 0
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

        /// Throws the `ServerError` of the first bad value.
        public func validate() throws(ServerError) {
            guard ServerError.threadRange.contains(threads) else { throw .threadsOutOfRange(threads) }
            guard ServerError.maxFrameSizeRange.contains(maxFrameSize) else { throw .maxFrameSizeOutOfRange(maxFrameSize) }
            guard registerTimeout >= .zero else { throw .negativeTimeout(.register) }
            guard idleTimeout >= .zero else { throw .negativeTimeout(.idle) }
            guard tick > .zero else { throw .tickNotPositive }
            guard ServerError.responseSizeRange.contains(responseSize) else { throw .responseSizeOutOfRange(responseSize) }
            if let maxFDs, maxFDs < ServerError.minimumMaxFDs { throw .maxFDsTooLow(maxFDs) }
        }
    }
}

/// A server that could not start. The cases carry the numbers; `description` words them in the
/// configuration's terms (the command line words them with its flag names).
public enum ServerError: Error, CustomStringConvertible, Sendable {
    /// Which timeout of the configuration.
    public enum Timeout: String, Sendable { case register, idle }

    /// `threads` outside `threadRange`.
    case threadsOutOfRange(Int)
    /// `maxFrameSize` outside `maxFrameSizeRange`.
    case maxFrameSizeOutOfRange(Int)
    case negativeTimeout(Timeout)
    case tickNotPositive
    /// `responseSize` (http) outside `responseSizeRange`.
    case responseSizeOutOfRange(Int)
    /// `maxFDs` below `minimumMaxFDs` (stdin/out/err, the engine and the listener need some).
    case maxFDsTooLow(Int)
    /// `maxFDs` above the hard descriptor limit, which a process cannot raise.
    case maxFDsAboveHardLimit(Int, hard: Int)
    /// `setrlimit` refused the soft limit.
    case cannotSetDescriptorLimit(Int, hard: Int, reason: String)
    /// The listener could not be set up (a socket, bind or reservation failure, worded by the system).
    case invalidConfiguration(String)
    case engine(EngineError)

    public static let threadRange = 1...64
    public static let maxFrameSizeRange = (1 + WireFormat.requestFixedBodySize)...Int(UInt32.max)
    public static let minimumMaxFDs = 8
    public static let responseSizeRange = 0...(16 << 20)

    public var description: String { text(threads: "threads", maxFrameSize: "max frame size", maxFDs: "max fds",
                                          timeout: { "\($0) timeout" }, tick: "tick") }

    /// The text with the settings named as the caller calls them (the command line: its flags).
    package func text(threads: String, maxFrameSize: String, maxFDs: String,
                      timeout: (Timeout) -> String, tick: String) -> String {
        switch self {
        case .threadsOutOfRange(let n):
            "\(threads) must be between \(Self.threadRange.lowerBound) and \(Self.threadRange.upperBound), not \(n)"
        case .maxFrameSizeOutOfRange(let n):
            "\(maxFrameSize) must be between \(Self.maxFrameSizeRange.lowerBound) and \(Self.maxFrameSizeRange.upperBound) bytes, not \(n)"
        case .negativeTimeout(let which): "\(timeout(which)) cannot be negative"
        case .tickNotPositive: "\(tick) must be positive"
        case .responseSizeOutOfRange(let n):
            "the http response size must be between 0 and \(Self.responseSizeRange.upperBound) bytes, not \(n)"
        case .maxFDsTooLow(let n):
            "\(maxFDs) must be at least \(Self.minimumMaxFDs) (stdin/out/err, the engine and the listener need some), not \(n)"
        case .maxFDsAboveHardLimit(let n, let hard):
            "\(maxFDs) \(n) is above the hard descriptor limit of \(hard) (ulimit -Hn); use at most \(hard)"
        case .cannotSetDescriptorLimit(let n, let hard, let reason):
            "cannot set the descriptor limit to \(n): \(reason) (hard limit \(hard))"
        case .invalidConfiguration(let text): text
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
