import RingStormEngine

/// `ringstorm repro`: the seed in one command (see `Docs/repro.md`).
///
/// A server in a child process with fewer descriptors than clients (`--max-fds`) and a chosen policy for
/// when they run out, and two groups of clients in this process: *registering* clients that behave like
/// the seed's (connect, send a 75-byte registration at once, a request every second, reconnect on error)
/// and *silent* clients that connect and send nothing, like telnet. The report puts what the server saw
/// beside what each group saw, and explains the difference from the numbers.
public enum Repro {
    public struct Configuration: Sendable {
        /// What the server does when accept fails for want of descriptors.
        public var policy: EMFILEPolicy = .shed
        /// Registering clients (the seed's).
        public var clients = 200
        /// Silent clients (telnet); they start `silentDelayNanoseconds` after the registering ones.
        public var silent = 50
        /// The server's descriptor limit (soft RLIMIT_NOFILE in the child).
        public var maxFDs = 64
        /// How long the clients run; the server runs a little longer.
        public var durationNanoseconds: Int64 = 10_000_000_000
        public var backend: Backend = .uring
        /// Bytes of each registering client's REGISTER (padded with registration data).
        public var registrationSize = 75
        /// A registering client sends a request every this long (open loop).
        public var intervalNanoseconds: Int64 = 1_000_000_000
        /// A registration or request unanswered this long ends the connection (`response_timeout`).
        public var requestTimeoutNanoseconds: Int64 = 2_000_000_000
        /// Reconnect backoff of the registering clients: first and longest wait.
        public var backoffNanoseconds: (minimum: Int64, maximum: Int64) = (100_000_000, 5_000_000_000)
        /// The server's register timeout, as `serve --register-timeout` takes it.
        public var registerTimeoutNanoseconds: Int64 = 5_000_000_000
        /// When the silent clients connect, after the registering ones (so the server is full by then).
        public var silentDelayNanoseconds: Int64 = 1_000_000_000
        /// The `ringstorm` binary that runs the server (`/proc/self/exe` from the command itself).
        public var executable: String = ChildProcess.currentExecutable

        public init() {}

        /// The most clients of both groups together: the repro is meant to run anywhere, in seconds.
        public static let maximumClients = 10_000

        /// The durations a repro may last.
        public static let durations: ClosedRange<Int64> = 1_000_000_000...600_000_000_000
        /// The fewest descriptors the server may be limited to (it needs a few for itself).
        public static let minimumMaxFDs = 16

        /// Throws the first bad value, with its numbers.
        public func validate() throws(ReproError) {
            guard clients >= 1 else { throw .clients(clients) }
            guard silent >= 0 else { throw .silentNegative(silent) }
            guard clients + silent <= Self.maximumClients else { throw .tooManyClients(clients + silent, maximum: Self.maximumClients) }
            guard maxFDs >= Self.minimumMaxFDs else { throw .maxFDs(maxFDs, minimum: Self.minimumMaxFDs) }
            guard Self.durations.contains(durationNanoseconds) else { throw .duration(durationNanoseconds, allowed: Self.durations) }
            guard silentDelayNanoseconds >= 0 && silentDelayNanoseconds < durationNanoseconds else {
                throw .silentDelay(silentDelayNanoseconds, duration: durationNanoseconds)
            }
            guard intervalNanoseconds > 0 else { throw .intervalNotPositive(intervalNanoseconds) }
            guard requestTimeoutNanoseconds > 0 else { throw .requestTimeoutNotPositive(requestTimeoutNanoseconds) }
            guard registerTimeoutNanoseconds >= 0 else { throw .registerTimeoutNegative(registerTimeoutNanoseconds) }
            guard registrationSize >= WireFormat.registerFrameSize && registrationSize <= 65_536 else {
                throw .registrationSize(registrationSize, minimum: WireFormat.registerFrameSize, maximum: 65_536)
            }
        }

        /// The registering clients' load configuration against `target`.
        func registering(target: SocketAddress) -> LoadGenerator.Configuration {
            var c = LoadGenerator.Configuration(target: target)
            c.connections = clients
            c.backend = backend
            c.wireProtocol = .ringstorm
            c.registrationSize = registrationSize
            c.messageSize = 32
            c.pacing = .openLoop(intervalNanoseconds: intervalNanoseconds)
            c.requestTimeoutNanoseconds = requestTimeoutNanoseconds
            c.connectTimeoutNanoseconds = 5_000_000_000
            c.reconnect = true
            c.reconnectMinimumNanoseconds = backoffNanoseconds.minimum
            c.reconnectMaximumNanoseconds = max(backoffNanoseconds.maximum, backoffNanoseconds.minimum)
            // Real clients spread their reconnects; without it, clients reset together by one shed come
            // back together, in step with the server's 100 ms tick.
            c.reconnectJitter = 0.5
            c.durationNanoseconds = durationNanoseconds
            // Both sides are compared at the deadline: no graceful drain after it, in which a descriptor
            // freed by one client would let a queued one register late.
            c.drainNanoseconds = 0
            Self.size(&c.engine, connections: clients)
            return c
        }

        /// The silent clients' configuration: they start later and end with the registering ones.
        func silentClients(target: SocketAddress) -> LoadGenerator.Configuration {
            var c = LoadGenerator.Configuration(target: target)
            c.connections = max(silent, 1)
            c.backend = backend
            c.pacing = .silent
            c.reconnect = false
            c.firstClient = clients  // ids after the registering clients'
            c.durationNanoseconds = durationNanoseconds - silentDelayNanoseconds
            c.drainNanoseconds = 0
            Self.size(&c.engine, connections: silent)
            return c
        }

        private static func size(_ engine: inout EngineConfiguration, connections: Int) {
            var buffers = 64  // a power of two (io_uring's buffer ring)
            while buffers < connections && buffers < 4096 { buffers *= 2 }
            engine.receiveBufferCount = buffers
            engine.submissionQueueEntries = 1024
            engine.completionQueueEntries = 8192
        }
    }
}

/// The repro could not run: a configuration value out of range (with its numbers; `ringstorm repro`
/// words these with its option names), or a failure while running (`failed`, one line).
public enum ReproError: Error, CustomStringConvertible, Sendable, Equatable {
    case clients(Int)
    case silentNegative(Int)
    case tooManyClients(Int, maximum: Int)
    case maxFDs(Int, minimum: Int)
    case duration(Int64, allowed: ClosedRange<Int64>)
    case silentDelay(Int64, duration: Int64)
    case intervalNotPositive(Int64)
    case requestTimeoutNotPositive(Int64)
    case registerTimeoutNegative(Int64)
    case registrationSize(Int, minimum: Int, maximum: Int)
    /// The run itself failed (the server did not start, died, sent no report, ...).
    case failed(String)

    public init(_ description: String) { self = .failed(description) }

    public var description: String {
        func seconds(_ ns: Int64) -> String { DurationParsing.format(nanoseconds: ns) }
        switch self {
        case .clients(let n): return "registering clients must be at least 1, not \(n)"
        case .silentNegative(let n): return "silent clients cannot be negative, not \(n)"
        case .tooManyClients(let n, let maximum): return "\(n) clients in all; the repro runs at most \(maximum)"
        case .maxFDs(let n, let minimum): return "the server's descriptor limit must be at least \(minimum), not \(n)"
        case .duration(let d, let allowed): return "the duration must be between \(seconds(allowed.lowerBound)) and \(seconds(allowed.upperBound)), not \(seconds(d))"
        case .silentDelay: return "the silent clients' delay must be less than the duration"
        case .intervalNotPositive: return "the request interval must be more than 0"
        case .requestTimeoutNotPositive: return "the request timeout must be more than 0"
        case .registerTimeoutNegative: return "the register timeout cannot be negative"
        case .registrationSize(let n, let minimum, let maximum): return "the registration size must be between \(minimum) and \(maximum) bytes, not \(n)"
        case .failed(let text): return text
        }
    }
}
