import Glibc

/// How one operation ended: the same name on both backends for the same kernel event.
///
/// `Docs/outcomes.md` gives the kernel behaviour behind each case. Nothing is lumped into "error": an
/// errno without a case of its own is kept, by number, in `.other`.
public enum Outcome: Hashable, Sendable, CustomStringConvertible {
    case success
    /// The peer sent FIN: `recv` returned 0.
    case closedByPeer
    /// The peer sent RST: ECONNRESET.
    case resetByPeer
    /// Sending after the connection was reset or shut down: EPIPE.
    case brokenPipe
    /// Nothing listens at the destination: ECONNREFUSED.
    case refused
    /// ETIMEDOUT from the kernel, or a deadline of the engine's (a connect timeout) that passed.
    case timedOut
    /// No local address/port pair left: EADDRNOTAVAIL (ephemeral ports exhausted).
    case addressNotAvailable
    /// The process's descriptor limit is reached: EMFILE.
    case tooManyOpenFiles
    /// The system-wide file table (or a fixed-file table) is full: ENFILE.
    case fileTableFull
    /// No provided buffer was free for a receive: ENOBUFS.
    case noBuffers
    /// The operation was cancelled (by a close): ECANCELED.
    case cancelled
    /// An orderly close could not send what was queued within the close deadline
    /// (`EngineConfiguration.closeTimeoutNanoseconds`: a peer that does not read), so the connection
    /// was aborted (RST) and the unsent bytes dropped. Counted once, as the send's outcome. No errno.
    case drainTimeout
    /// Any other errno, kept by number.
    case other(Errno)

    /// Classifies an errno. The mapping is the single source of truth for both backends.
    public init(_ error: Errno) {
        switch error.rawValue {
        case ECONNRESET: self = .resetByPeer
        case EPIPE: self = .brokenPipe
        case ECONNREFUSED: self = .refused
        case ETIMEDOUT, ETIME: self = .timedOut
        case EADDRNOTAVAIL: self = .addressNotAvailable
        case EMFILE: self = .tooManyOpenFiles
        case ENFILE: self = .fileTableFull
        case ENOBUFS: self = .noBuffers
        case ECANCELED: self = .cancelled
        default: self = .other(error)
        }
    }

    /// The snake_case name reports use (`reset`, `closed`, ...; `EHOSTUNREACH` for an unnamed errno).
    public var name: String {
        switch self {
        case .success: "ok"
        case .closedByPeer: "closed"
        case .resetByPeer: "reset"
        case .brokenPipe: "broken_pipe"
        case .refused: "refused"
        case .timedOut: "timed_out"
        case .addressNotAvailable: "addr_not_available"
        case .tooManyOpenFiles: "EMFILE"
        case .fileTableFull: "ENFILE"
        case .noBuffers: "ENOBUFS"
        case .cancelled: "cancelled"
        case .drainTimeout: "drain_timeout"
        case .other(let e): e.name
        }
    }

    public var description: String { name }

    /// The errno behind a failure, if there is one (`closedByPeer`, `drainTimeout` and `success` have none).
    public var errno: Errno? {
        switch self {
        case .success, .closedByPeer, .drainTimeout: nil
        case .resetByPeer: .connectionReset
        case .brokenPipe: .brokenPipe
        case .refused: .connectionRefused
        case .timedOut: .timedOut
        case .addressNotAvailable: .addressNotAvailable
        case .tooManyOpenFiles: .tooManyOpenFiles
        case .fileTableFull: .fileTableFull
        case .noBuffers: .noBuffers
        case .cancelled: .cancelled
        case .other(let e): e
        }
    }

    /// Resource exhaustion on accept: the engine stops accepting on that listener until told to resume,
    /// because retrying at once only spins (about two million failed accepts a second here).
    public var pausesAccepting: Bool {
        switch self {
        case .tooManyOpenFiles, .fileTableFull, .noBuffers: true
        case .other(let e): e.rawValue == ENOMEM
        default: false
        }
    }

    /// The named cases, in counter order: the one list the flat counters are laid out from. `.other`
    /// counts after them, so a row is `counterWidth` cells wide.
    package static let namedCases: [Outcome] = [
        .success, .closedByPeer, .resetByPeer, .brokenPipe, .refused, .timedOut, .addressNotAvailable,
        .tooManyOpenFiles, .fileTableFull, .noBuffers, .cancelled, .drainTimeout,
    ]

    /// Cells per operation kind in the flat counters: every named case, then `.other`.
    package static let counterWidth = namedCases.count + 1

    /// Dense index for flat counter arrays: the position in `namedCases`, `.other` the one after. A
    /// literal switch on the per-completion path; `checkCounterLayout` holds it to `namedCases`.
    @inline(__always)
    package var counterIndex: Int {
        switch self {
        case .success: 0
        case .closedByPeer: 1
        case .resetByPeer: 2
        case .brokenPipe: 3
        case .refused: 4
        case .timedOut: 5
        case .addressNotAvailable: 6
        case .tooManyOpenFiles: 7
        case .fileTableFull: 8
        case .noBuffers: 9
        case .cancelled: 10
        case .drainTimeout: 11
        case .other: 12
        }
    }

    /// Traps unless `counterIndex` numbers `namedCases` in order with `.other` last, so an outcome
    /// added to one and not the other stops the first engine instead of writing into the next
    /// operation's counters. Run once per `Counters`.
    package static func checkCounterLayout() {
        for (position, outcome) in namedCases.enumerated() {
            precondition(outcome.counterIndex == position, "Outcome.\(outcome) counts at \(outcome.counterIndex), listed at \(position)")
        }
        precondition(Outcome.other(Errno(rawValue: 0)).counterIndex == namedCases.count, "Outcome.other must count after every named case")
    }
}

/// The kinds of operation whose completions are counted by outcome.
public enum OperationKind: Int, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case connect, accept, receive, send, close

    public var description: String {
        switch self {
        case .connect: "connect"
        case .accept: "accept"
        case .receive: "recv"
        case .send: "send"
        case .close: "close"
        }
    }
}

/// Completions counted by operation kind and outcome: a flat array on the hot path, a dictionary only
/// for the rare errno without a name of its own.
public struct OutcomeCounts: Sendable, Equatable {
    private var counts = [Int](repeating: 0, count: OperationKind.allCases.count * Outcome.counterWidth)
    private var others: [Int: [Int32: Int]] = [:]

    public init() {}

    public mutating func record(_ kind: OperationKind, _ outcome: Outcome, times: Int = 1) {
        guard times != 0 else { return }
        if case .other(let e) = outcome { others[kind.rawValue, default: [:]][e.rawValue, default: 0] += times }
        counts[kind.rawValue * Outcome.counterWidth + outcome.counterIndex] += times
    }

    public func count(_ kind: OperationKind, _ outcome: Outcome) -> Int {
        if case .other(let e) = outcome { return others[kind.rawValue]?[e.rawValue] ?? 0 }
        return counts[kind.rawValue * Outcome.counterWidth + outcome.counterIndex]
    }

    /// All completions of one kind, whatever their outcome.
    public func total(_ kind: OperationKind) -> Int {
        counts[(kind.rawValue * Outcome.counterWidth)..<((kind.rawValue + 1) * Outcome.counterWidth)].reduce(0, +)
    }

    /// Non-zero counts: operation name → outcome name → count.
    public var byName: [String: [String: Int]] {
        var result: [String: [String: Int]] = [:]
        for kind in OperationKind.allCases {
            var row: [String: Int] = [:]
            for outcome in Outcome.namedCases {
                let n = count(kind, outcome)
                if n > 0 { row[outcome.name] = n }
            }
            for (e, n) in others[kind.rawValue] ?? [:] { row[Errno(rawValue: e).name] = n }
            if !row.isEmpty { result[kind.description] = row }
        }
        return result
    }

    public static func + (a: OutcomeCounts, b: OutcomeCounts) -> OutcomeCounts {
        var sum = a
        for i in sum.counts.indices { sum.counts[i] += b.counts[i] }
        for (k, row) in b.others { for (e, n) in row { sum.others[k, default: [:]][e, default: 0] += n } }
        return sum
    }
}
