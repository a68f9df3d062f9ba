import RingStormEngine

/// Why a load run refused to start, with the numbers. `description` words it in the terms of
/// `LoadGenerator.Configuration`; the `ringstorm load` command words it with its own option names.
public enum LoadError: Error, CustomStringConvertible, Sendable, Equatable {
    /// `connections` below 1.
    case connections(Int)
    /// `threads` outside `1...maximum`.
    case threads(Int, maximum: Int)
    /// Worker processes outside `1...maximum`.
    case processes(Int, maximum: Int)
    /// More worker processes than connections.
    case processesExceedConnections(processes: Int, connections: Int)
    case firstClientNegative(Int)
    case targetWithoutPort(SocketAddress)
    case durationNotPositive(Int64)
    case connectRateNegative(Double)
    case requestTimeoutNotPositive(Int64)
    /// The reconnect jitter outside `0...maximum`.
    case reconnectJitter(Double, maximum: Double)
    case firstMessageNegative(Int)
    case intervalNotPositive(Int64)
    /// A whole-run request rate that is not a positive number.
    case rateNotPositive(Double)
    /// A closed-loop pipeline outside `1...maximum`.
    case pipeline(Int, maximum: Int)
    /// A source address of another family than the target.
    case sourceFamily(source: SocketAddress, target: SocketAddress)
    /// A message smaller than the protocol allows.
    case messageSizeTooSmall(Int, minimum: Int, protocol: LoadGenerator.WireProtocol)
    /// A request payload that does not fit the largest frame.
    case messageSizeTooLarge(Int, maxFrameSize: Int, most: Int)
    /// A first message set for a protocol that sends its own (ringstorm: REGISTER).
    case firstMessageNotFor(LoadGenerator.WireProtocol)
    case registrationSize(Int, minimum: Int, maximum: Int)
    /// A registration size set for a protocol without one.
    case registrationSizeNotFor(LoadGenerator.WireProtocol)
    /// `raw` without a message to send.
    case rawMessageMissing
    /// `raw` with an empty first message.
    case rawFirstMessageEmpty
    /// `raw` without a response framing.
    case rawResponseFramingMissing
    /// Two response framings given at once (`first`: for the first message's answer).
    case rawFramingConflict(first: Bool)
    /// A fixed response size outside `1...maximum`.
    case rawResponseSize(Int, maximum: Int, first: Bool)
    case rawDelimiterEmpty(first: Bool)
    /// A length prefix not 1, 2, 4 or 8 bytes wide.
    case rawLengthPrefixWidth(Int, first: Bool)
    /// A length prefix offset outside `0...maximum`.
    case rawLengthPrefixOffset(Int, maximum: Int, first: Bool)
    case rawMaxResponseSize(Int)
    /// A framing for the first answer without a first message.
    case rawFirstResponseWithoutFirstMessage
    /// Raw messages or framings set for another protocol.
    case rawOptionsNotFor(LoadGenerator.WireProtocol)
    /// An HTTP method that is not a token.
    case httpMethod(String)
    /// An HTTP path that does not start with `/` or holds spaces or control bytes.
    case httpPath(String)
    /// A header that is not `Name: value` on one line.
    case httpHeader(String)
    /// `Content-Length` or `Transfer-Encoding` given: the load generator frames the body itself.
    case httpHeaderSetByLoad(String)
    case httpLimits(header: Int, body: Int)
    /// HTTP request values set for another protocol.
    case httpOptionsNotFor(LoadGenerator.WireProtocol)
    /// More connections per process than descriptors.
    case descriptors(DescriptorShortage)
    /// More connections per source address than local ports.
    case ports(PortShortage)
    /// Source address text that does not parse: the text and what is wrong with it.
    case sources(String, SourceProblem)
    /// The connections log cannot be opened.
    case connectionsLog(path: String, Errno)

    public struct DescriptorShortage: Sendable, Equatable {
        public var connections: Int
        public var processes: Int
        public var perProcess: Int
        /// Descriptors one process may use for connections: `limit - margin`.
        public var usable: Int
        /// RLIMIT_NOFILE, and the descriptors kept back from it.
        public var limit: Int
        public var margin: Int
        /// Processes that would fit.
        public var processesNeeded: Int
    }

    public struct PortShortage: Sendable, Equatable {
        public var connections: Int
        public var sources: Int
        public var perSource: Int
        public var portsPerSource: Int
        /// Source addresses that would fit.
        public var sourcesNeeded: Int
        /// An IPv4 range of that many addresses to suggest (from the first source, or 127.0.0.2 for a
        /// loopback target), when there is one.
        public var suggestedRange: ClosedRange<UInt32>?
    }

    public enum SourceProblem: Sendable, Equatable {
        case rangeNotIPv4
        case rangeBackwards
        case tooMany(maximum: Int)
        case empty
        case unparsable(String)
    }

    public var description: String {
        switch self {
        case .connections(let n): "connections must be at least 1, not \(n)"
        case .threads(let n, let maximum): "threads must be between 1 and \(maximum), not \(n)"
        case .processes(let n, let maximum): "processes must be between 1 and \(maximum), not \(n)"
        case .processesExceedConnections(let p, let c): "\(p) processes is more than \(c) connections"
        case .firstClientNegative(let n): "the first client number cannot be negative, not \(n)"
        case .targetWithoutPort(let target): "target \(target) has no port"
        case .durationNotPositive: "the duration must be more than 0"
        case .connectRateNegative: "the connect rate cannot be negative"
        case .requestTimeoutNotPositive: "the request timeout must be more than 0"
        case .reconnectJitter(let j, let maximum): "the reconnect jitter must be between 0 and \(maximum), not \(j)"
        case .firstMessageNegative: "the first message size cannot be negative"
        case .intervalNotPositive: "the open-loop interval must be more than 0"
        case .rateNotPositive(let r): "the request rate must be more than 0 requests per second, not \(r)"
        case .pipeline(let n, let maximum): "the pipeline must be between 1 and \(maximum), not \(n)"
        case .sourceFamily(let source, let target): "source \(source.host) and target \(target) are of different address families"
        case .messageSizeTooSmall(let n, let minimum, let p): "a \(p) message must be at least \(minimum) bytes, not \(n)"
        case .messageSizeTooLarge(let n, let frame, let most): "a \(n)-byte payload does not fit a \(frame)-byte frame; the most is \(most)"
        case .firstMessageNotFor(let p): "a first message is not for the \(p) protocol"
        case .registrationSize(let n, let minimum, let maximum): "the registration size must be between \(minimum) and \(maximum) bytes, not \(n)"
        case .registrationSizeNotFor(let p): "a registration size is not for the \(p) protocol"
        case .rawMessageMissing: "the raw protocol needs a message to send"
        case .rawFirstMessageEmpty: "the raw first message is empty"
        case .rawResponseFramingMissing: "the raw protocol needs a response framing: a size, a delimiter or a length prefix"
        case .rawFramingConflict(let first): "\(first ? "the first answer" : "a response") has more than one framing"
        case .rawResponseSize(let n, let maximum, _): "a raw response size must be between 1 and \(maximum), not \(n)"
        case .rawDelimiterEmpty: "a raw response delimiter cannot be empty"
        case .rawLengthPrefixWidth(let n, _): "a length prefix is 1, 2, 4 or 8 bytes wide, not \(n)"
        case .rawLengthPrefixOffset(let n, let maximum, _): "a length prefix offset must be between 0 and \(maximum), not \(n)"
        case .rawMaxResponseSize(let n): "the largest raw response must be at least 1 byte, not \(n)"
        case .rawFirstResponseWithoutFirstMessage: "a framing for the first answer needs a first message"
        case .rawOptionsNotFor(let p): "raw messages and framings are not for the \(p) protocol"
        case .httpMethod(let m): "HTTP method '\(m)' is not a token (e.g. GET, POST)"
        case .httpPath(let p): "HTTP path '\(p)' must start with / and hold no spaces or control bytes"
        case .httpHeader(let h): "HTTP header '\(h)' is not 'Name: value' on one line"
        case .httpHeaderSetByLoad(let h): "HTTP header '\(h)' is set by the load generator from the body"
        case .httpLimits(let h, let b): "HTTP limits must be at least 64 header bytes and 0 body bytes, not \(h) and \(b)"
        case .httpOptionsNotFor(let p): "HTTP request values are not for the \(p) protocol"
        case .descriptors(let s):
            "\(s.connections) connections over \(s.processes) processes need \(s.perProcess) descriptors per process but one may open \(s.usable)"
        case .ports(let s):
            "\(s.connections) connections from \(s.sources) source addresses need \(s.perSource) local ports per source but one has \(s.portsPerSource)"
        case .sources(let text, let problem): "source addresses '\(text)': \(problem)"
        case .connectionsLog(let path, let errno): "connections log \(path): cannot open: \(errno)"
        }
    }
}
