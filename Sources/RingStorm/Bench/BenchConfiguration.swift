import RingStormEngine

/// `ringstorm bench`: io_uring and epoll side by side, in one command.
public enum Bench {
    /// What one bench runs: the same closed-loop load on each backend, interleaved over rounds.
    public struct Configuration: Sendable, Equatable {
        /// Connections of the load generator (each one request in flight).
        public var connections: Int = 1000
        /// Request payload (ringstorm) or message (echo) size in bytes.
        public var messageSize: Int = 64
        /// How long each run's load lasts.
        public var durationNanoseconds: Int64 = 5_000_000_000
        /// Rounds; each round runs every backend once, in `backends` order.
        public var rounds: Int = 2
        /// Wire protocol, spoken by both sides.
        public var wireProtocol: LoadGenerator.WireProtocol = .echo
        /// Engine threads of each side.
        public var threads: Int = 1
        /// Only the load side, against this server (its backend is whatever it is); nil: a server of the
        /// same backend is started on loopback for each run.
        public var target: SocketAddress?
        /// The backends compared, in round order.
        public var backends: [Backend] = [.uring, .epoll]
        /// How often each side reports while running: the time series' step.
        public var sampleIntervalNanoseconds: Int64 = 250_000_000
        /// The binary whose `serve` and `load` run the sides (this one).
        public var executable: String = ChildProcess.currentExecutable

        public init() {}

        /// The server protocol answering `wireProtocol`; nil for a client protocol the bench does not serve.
        var serverProtocol: ServerProtocolKind? {
            switch wireProtocol {
            case .ringstorm: return .ringstorm
            case .echo: return .echo
            case .http: return .http
            case .raw: return nil
            }
        }

        /// Checks what can be checked before anything starts.
        public func validate() throws(BenchError) {
            guard connections >= 1 else { throw .connections(connections) }
            guard rounds >= 1 && rounds <= Self.maximumRounds else { throw .rounds(rounds, maximum: Self.maximumRounds) }
            guard durationNanoseconds >= 1_000_000_000 else { throw .durationTooShort(durationNanoseconds) }
            guard !backends.isEmpty else { throw .noBackend }
            if target == nil && serverProtocol == nil { throw .protocolNotServed(wireProtocol) }
            guard sampleIntervalNanoseconds >= 50_000_000 else { throw .sampleInterval(sampleIntervalNanoseconds) }
        }

        public static let maximumRounds = 50

        /// The load generator's configuration for one run on `backend` against `target`.
        package func load(backend: Backend, target: SocketAddress) -> LoadGenerator.Configuration {
            var c = LoadGenerator.Configuration(target: target)
            c.connections = connections
            c.durationNanoseconds = durationNanoseconds
            c.wireProtocol = wireProtocol
            c.pacing = .closedLoop(pipeline: 1)
            c.messageSize = messageSize
            c.backend = backend
            c.threads = threads
            return c
        }

        /// The server's configuration for one run on `backend` (loopback, a port the kernel picks).
        package func server(backend: Backend) -> RingStormServer.Configuration {
            var c = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
            c.backend = backend
            c.threads = threads
            c.protocol = serverProtocol ?? .echo
            c.reusePort = threads > 1
            c.reportInterval = .nanoseconds(sampleIntervalNanoseconds)
            return c
        }
    }
}

/// A bench that cannot run as configured; the CLI words each case with its flags.
public enum BenchError: Error, Sendable, Equatable, CustomStringConvertible {
    case connections(Int)
    case rounds(Int, maximum: Int)
    case durationTooShort(Int64)
    case noBackend
    case protocolNotServed(LoadGenerator.WireProtocol)
    case sampleInterval(Int64)
    /// A side failed to start or died; the text names which and how.
    case sideFailed(String)

    public var description: String {
        switch self {
        case .connections(let n): return "connections must be at least 1, not \(n)"
        case .rounds(let n, let maximum): return "rounds must be between 1 and \(maximum), not \(n)"
        case .durationTooShort(let ns): return "each run must last at least 1 s, not \(DurationParsing.format(nanoseconds: ns))"
        case .noBackend: return "no backend to compare"
        case .protocolNotServed(let p): return "the bench's own server does not speak \(p); name a server of yours as the target"
        case .sampleInterval(let ns): return "the sample interval must be at least 50 ms, not \(DurationParsing.format(nanoseconds: ns))"
        case .sideFailed(let text): return text
        }
    }
}
