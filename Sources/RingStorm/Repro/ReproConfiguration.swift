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

        /// Throws the first bad value (`ReproError.Problem`, carrying the numbers).
        public func validate() throws(ReproError) {
            guard clients >= 1 else { throw ReproError(.clientsBelowOne(clients)) }
            guard silent >= 0 else { throw ReproError(.silentNegative) }
            guard clients + silent <= Self.maximumClients else { throw ReproError(.tooManyClients(clients + silent)) }
            guard maxFDs >= Self.minimumMaxFDs else { throw ReproError(.maxFDsTooLow(maxFDs)) }
            guard Self.durationRange.contains(durationNanoseconds) else { throw ReproError(.durationOutOfRange(durationNanoseconds)) }
            guard silentDelayNanoseconds >= 0 && silentDelayNanoseconds < durationNanoseconds else {
                throw ReproError(.silentDelayNotWithinDuration)
            }
            guard intervalNanoseconds > 0 else { throw ReproError(.notPositive(.interval)) }
            guard requestTimeoutNanoseconds > 0 else { throw ReproError(.notPositive(.requestTimeout)) }
            guard registerTimeoutNanoseconds >= 0 else { throw ReproError(.registerTimeoutNegative) }
            guard Self.registrationSizeRange.contains(registrationSize) else {
                throw ReproError(.registrationSizeOutOfRange(registrationSize))
            }
        }

        /// The server needs a few descriptors for itself.
        public static let minimumMaxFDs = 16
        public static let durationRange: ClosedRange<Int64> = 1_000_000_000...600_000_000_000
        public static let registrationSizeRange = WireFormat.registerFrameSize...65_536

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

/// The repro could not run; one line naming the problem.
/// A repro that could not run: a bad setting (the cases carry the numbers; `description` names the
/// settings in the configuration's terms, the command line with its flags), or a failure while running.
public struct ReproError: Error, CustomStringConvertible, Sendable {
    /// The settings an error may name.
    public enum Setting: String, Sendable {
        case clients, silent, maxFDs, duration, silentDelay, interval, requestTimeout, registerTimeout, registrationSize
    }

    public enum Problem: Sendable, Equatable {
        case clientsBelowOne(Int)
        case silentNegative
        /// Clients of both groups together, above `Repro.Configuration.maximumClients`.
        case tooManyClients(Int)
        /// Below `Repro.Configuration.minimumMaxFDs`.
        case maxFDsTooLow(Int)
        /// Nanoseconds, outside `Repro.Configuration.durationRange`.
        case durationOutOfRange(Int64)
        case silentDelayNotWithinDuration
        case notPositive(Setting)
        case registerTimeoutNegative
        /// Outside `Repro.Configuration.registrationSizeRange`.
        case registrationSizeOutOfRange(Int)
        /// Running it failed (the server or the clients would not start, a report went missing).
        case failed(String)
    }

    public let problem: Problem

    public init(_ problem: Problem) { self.problem = problem }
    public init(_ description: String) { problem = .failed(description) }

    public var description: String {
        text { setting in
            switch setting {
            case .silent: "silent clients"
            case .maxFDs: "max fds"
            case .silentDelay: "silent delay"
            case .requestTimeout: "request timeout"
            case .registerTimeout: "register timeout"
            case .registrationSize: "registration size"
            case .clients, .duration, .interval: setting.rawValue
            }
        }
    }

    /// The text with each setting named by `name` (the command line: its flag).
    package func text(naming name: (Setting) -> String) -> String {
        typealias C = Repro.Configuration
        return switch problem {
        case .clientsBelowOne(let n): "\(name(.clients)) must be at least 1, not \(n)"
        case .silentNegative: "\(name(.silent)) cannot be negative"
        case .tooManyClients(let n):
            "\(name(.clients)) plus \(name(.silent)) is \(n); the repro runs at most \(C.maximumClients) (use serve and load for more)"
        case .maxFDsTooLow(let n):
            "\(name(.maxFDs)) must be at least \(C.minimumMaxFDs) (the server needs a few for itself), not \(n)"
        case .durationOutOfRange(let ns):
            "\(name(.duration)) must be between \(DurationParsing.format(nanoseconds: C.durationRange.lowerBound)) and "
                + "\(DurationParsing.format(nanoseconds: C.durationRange.upperBound)), not \(DurationParsing.format(nanoseconds: ns))"
        case .silentDelayNotWithinDuration: "\(name(.silentDelay)) must be less than \(name(.duration))"
        case .notPositive(let setting): "\(name(setting)) must be more than 0"
        case .registerTimeoutNegative: "\(name(.registerTimeout)) cannot be negative"
        case .registrationSizeOutOfRange(let n):
            "\(name(.registrationSize)) must be between \(C.registrationSizeRange.lowerBound) and \(C.registrationSizeRange.upperBound) bytes, not \(n)"
        case .failed(let text): text
        }
    }
}
