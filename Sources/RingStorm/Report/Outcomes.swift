import RingStormEngine

/// Where in a connection's life the load generator saw an outcome.
public enum Phase: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Opening the connection (the TCP handshake, up to the connect timeout).
    case connect
    /// REGISTER sent, waiting for REGISTERED (`ringstorm` protocol only).
    case register
    /// A request in flight: sent, its response not yet back.
    case request
    /// Connected (and registered), no request in flight.
    case idle

    public var description: String { rawValue }
}

/// How a connection attempt, a registration or a request failed, under the names reports use.
///
/// Engine outcomes map to these with `init?(_:in:)`, which depends on the phase: a `.timedOut` while
/// connecting is `connectTimeout`, whereas a response that does not come back in time is noticed by the
/// load generator itself (`responseTimeout`), as is a protocol violation by the server (`protocolError`).
/// Whatever has no name of its own is `other`, keyed by its errno name.
public enum FailureOutcome: Hashable, Sendable, CustomStringConvertible {
    /// ECONNREFUSED: nothing listens there (or the SYN queue overflowed with `tcp_abort_on_overflow`).
    case refused
    /// The connect did not finish within the connect timeout (or the kernel gave up: ETIMEDOUT).
    case connectTimeout
    /// EADDRNOTAVAIL: no local port left for the destination.
    case addressNotAvailable
    /// ECONNRESET: the peer sent RST.
    case reset
    /// The peer closed (FIN) when it should not have.
    case closed
    /// EPIPE: sending after the connection was shut down.
    case brokenPipe
    /// No response (or REGISTERED) within the response timeout: the load generator's own deadline.
    case responseTimeout
    /// The peer broke the protocol (a malformed frame, an ERROR frame, a mismatched echo).
    case protocolError
    /// Anything else, by errno name (`EHOSTUNREACH`, `ETIMEDOUT` outside connect, `EMFILE`, ...).
    case other(String)

    /// The names with a counter of their own, in report order (`other` comes last, as a sub-object).
    public static let named: [FailureOutcome] = [
        .refused, .connectTimeout, .addressNotAvailable, .reset, .closed, .brokenPipe, .responseTimeout, .protocolError,
    ]

    /// The report name: `refused`, `connect_timeout`, ...; for `other`, the errno name.
    public var name: String {
        switch self {
        case .refused: "refused"
        case .connectTimeout: "connect_timeout"
        case .addressNotAvailable: "addr_not_available"
        case .reset: "reset"
        case .closed: "closed"
        case .brokenPipe: "broken_pipe"
        case .responseTimeout: "response_timeout"
        case .protocolError: "protocol_error"
        case .other(let errnoName): errnoName
        }
    }

    public var description: String {
        if case .other(let errnoName) = self { return "other(\(errnoName))" }
        return name
    }

    /// Classifies an engine outcome seen in `phase`; nil for `.success`, which is no failure.
    ///
    /// - `.timedOut` is `connectTimeout` in the connect phase and `other("ETIMEDOUT")` elsewhere (the
    ///   kernel giving up on retransmissions, not the load generator's response timeout).
    /// - `.tooManyOpenFiles`, `.fileTableFull`, `.noBuffers`, `.cancelled` and `.other(errno)` are
    ///   `other` under their errno name.
    public init?(_ outcome: Outcome, in phase: Phase) {
        switch outcome {
        case .success: return nil
        case .refused: self = .refused
        case .timedOut: self = phase == .connect ? .connectTimeout : .other("ETIMEDOUT")
        case .addressNotAvailable: self = .addressNotAvailable
        case .resetByPeer: self = .reset
        case .closedByPeer: self = .closed
        case .brokenPipe: self = .brokenPipe
        default: self = .other(outcome.errno?.name ?? outcome.name)
        }
    }

    /// The outcome a report name stands for: one of the named ones, else `other(name)`.
    public init(name: String) {
        self = Self.named.first { $0.name == name } ?? .other(name)
    }
}

/// Failure counts of one phase: a counter per named outcome, and errno name → count for the rest.
public struct OutcomeCounters: Sendable, Equatable {
    public var refused = 0
    public var connectTimeout = 0
    public var addressNotAvailable = 0
    public var reset = 0
    public var closed = 0
    public var brokenPipe = 0
    public var responseTimeout = 0
    public var protocolError = 0
    /// Outcomes without a name of their own, by errno name.
    public var other: [String: Int] = [:]

    public init() {}

    @inline(__always)
    public mutating func record(_ outcome: FailureOutcome, times: Int = 1) {
        switch outcome {
        case .refused: refused += times
        case .connectTimeout: connectTimeout += times
        case .addressNotAvailable: addressNotAvailable += times
        case .reset: reset += times
        case .closed: closed += times
        case .brokenPipe: brokenPipe += times
        case .responseTimeout: responseTimeout += times
        case .protocolError: protocolError += times
        case .other(let name): other[name, default: 0] += times
        }
    }

    public subscript(_ outcome: FailureOutcome) -> Int {
        switch outcome {
        case .refused: refused
        case .connectTimeout: connectTimeout
        case .addressNotAvailable: addressNotAvailable
        case .reset: reset
        case .closed: closed
        case .brokenPipe: brokenPipe
        case .responseTimeout: responseTimeout
        case .protocolError: protocolError
        case .other(let name): other[name] ?? 0
        }
    }

    /// All failures counted, named and other.
    public var total: Int {
        FailureOutcome.named.reduce(0) { $0 + self[$1] } + other.values.reduce(0, +)
    }

    /// Non-zero counts in report order (named first, then `other` by name).
    public var nonZero: [(outcome: FailureOutcome, count: Int)] {
        var result: [(FailureOutcome, Int)] = []
        for outcome in FailureOutcome.named where self[outcome] > 0 { result.append((outcome, self[outcome])) }
        for name in other.keys.sorted() where other[name]! > 0 { result.append((.other(name), other[name]!)) }
        return result
    }

    public mutating func merge(_ b: OutcomeCounters) {
        for outcome in FailureOutcome.named { record(outcome, times: b[outcome]) }
        for (name, n) in b.other { other[name, default: 0] += n }
    }

    public static func + (a: OutcomeCounters, b: OutcomeCounters) -> OutcomeCounters {
        var sum = a
        sum.merge(b)
        return sum
    }
}

extension OutcomeCounters: Codable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Every named outcome, zero or not, in report order, then `"other": {errno name: count}`, sorted.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for outcome in FailureOutcome.named { try container.encode(self[outcome], forKey: Key(outcome.name)) }
        var others = container.nestedContainer(keyedBy: Key.self, forKey: Key("other"))
        for name in other.keys.sorted() { try others.encode(other[name]!, forKey: Key(name)) }
    }

    /// Missing names count as 0; unknown keys are an error (they would be silently dropped otherwise).
    public init(from decoder: any Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys {
            if key.stringValue == "other" {
                let others = try container.nestedContainer(keyedBy: Key.self, forKey: key)
                for name in others.allKeys { other[name.stringValue, default: 0] += try others.decode(Int.self, forKey: name) }
                continue
            }
            let outcome = FailureOutcome(name: key.stringValue)
            guard case .other = outcome else {
                record(outcome, times: try container.decode(Int.self, forKey: key))
                continue
            }
            throw DecodingError.dataCorruptedError(
                forKey: key, in: container, debugDescription: "unknown outcome '\(key.stringValue)'")
        }
    }
}

/// Failure counts for every phase.
public struct PhaseOutcomes: Sendable, Equatable, Codable {
    public var connect = OutcomeCounters()
    public var register = OutcomeCounters()
    public var request = OutcomeCounters()
    public var idle = OutcomeCounters()

    public init() {}

    public subscript(_ phase: Phase) -> OutcomeCounters {
        get {
            switch phase {
            case .connect: connect
            case .register: register
            case .request: request
            case .idle: idle
            }
        }
        set {
            switch phase {
            case .connect: connect = newValue
            case .register: register = newValue
            case .request: request = newValue
            case .idle: idle = newValue
            }
        }
    }

    /// Counts a failure in `phase`.
    @inline(__always)
    public mutating func record(_ outcome: FailureOutcome, in phase: Phase, times: Int = 1) {
        switch phase {
        case .connect: connect.record(outcome, times: times)
        case .register: register.record(outcome, times: times)
        case .request: request.record(outcome, times: times)
        case .idle: idle.record(outcome, times: times)
        }
    }

    /// Counts an engine outcome seen in `phase` (nothing for `.success`).
    @inline(__always)
    public mutating func record(_ outcome: Outcome, in phase: Phase) {
        guard let failure = FailureOutcome(outcome, in: phase) else { return }
        record(failure, in: phase)
    }

    /// Failures of every phase.
    public var total: Int { Phase.allCases.reduce(0) { $0 + self[$1].total } }

    public mutating func merge(_ b: PhaseOutcomes) {
        for phase in Phase.allCases { self[phase].merge(b[phase]) }
    }

    public static func + (a: PhaseOutcomes, b: PhaseOutcomes) -> PhaseOutcomes {
        var sum = a
        sum.merge(b)
        return sum
    }

    enum CodingKeys: String, CodingKey {
        case connect, register, request, idle
    }
}
