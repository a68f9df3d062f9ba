import RingStormEngine

/// What a server speaks on its connections: the one list of protocols. Adding one is a case here, a
/// line in `withImplementation`, and a file in `Protocols/NAME/` with a type conforming to `ServerProtocol`.
public enum ServerProtocolKind: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Length-prefixed frames: REGISTER, then REQUESTs answered with RESPONSEs (`Docs/protocol.md`).
    case ringstorm
    /// Raw bytes echoed back.
    case echo
    /// HTTP/1.1 keep-alive: every request answered `200` with `responseSize` body bytes.
    case http

    public var description: String { rawValue }

    /// The one switch from a kind to its type: hands the concrete type to `body` (as `withEngine` does
    /// for backends), so the worker it builds is specialised for the protocol, never an existential.
    func withImplementation<Body: ServerProtocolBody>(_ body: Body) throws -> Body.Result {
        switch self {
        case .ringstorm: try body.run(RingStormServerProtocol.self)
        case .echo: try body.run(EchoServerProtocol.self)
        case .http: try body.run(HTTPServerProtocol.self)
        }
    }
}

/// The server side of a wire protocol: frames the bytes a connection sends and answers them. Everything
/// else (accept, the descriptor-exhaustion policy, register and idle deadlines, closes, counts,
/// snapshots) is `ServerWorker`'s, the same for every protocol.
///
/// One instance per worker, owning whatever per-connection state it needs in flat memory indexed by
/// the connection's slot (`ConnectionID.slot`, below `slots`). Calls are made from the worker's thread
/// only. Per message nothing may allocate; the worker is generic over the protocol, so these calls are
/// direct (specialised), never through an existential.
protocol ServerProtocol: AnyObject {
    /// Whether a connection must register before anything else: the register timeout runs from accept
    /// until `received` reports `.registered`. Without one, a connection is open (and the idle timeout
    /// runs) from accept.
    static var registers: Bool { get }

    init(configuration: RingStormServer.Configuration, slots: Int)

    /// A connection was accepted into `slot` (reset what an earlier occupant left).
    func accepted(slot: Int)

    /// Bytes arrived on `id`, a live connection (`registered`: whether it has registered, or the
    /// protocol has no registration). Answers go out with `engine.send`; requests answered are counted
    /// in `report`. A violation is answered (ERROR, say) before returning `.violated`: the worker then
    /// counts it and closes the connection (FIN after the answers already queued).
    func received<Engine: NetworkEngine>(_ bytes: UnsafeRawBufferPointer, on id: ConnectionID, registered: Bool,
                                         engine: Engine, report: UnsafeMutablePointer<ServerReport>) -> Reception

    /// `id` did not register within `timeout` nanoseconds: its last word before the worker closes it.
    func registerTimedOut<Engine: NetworkEngine>(_ id: ConnectionID, timeout: Int64, engine: Engine)

    /// Fills in the protocol's own counters of a snapshot from the engine's (e.g. bytes echoed).
    static func complete(_ report: inout ServerReport, statistics: EngineStatistics)
}

/// Code written once against any server protocol, run with the concrete type a kind names.
protocol ServerProtocolBody {
    associatedtype Result
    func run<P: ServerProtocol>(_ implementation: P.Type) throws -> Result
}

/// What became of a connection after `ServerProtocol.received`.
enum Reception {
    /// Answered (or waiting for more bytes); nothing changes.
    case answered
    /// The connection registered: the register deadline stops, the idle one runs.
    case registered
    /// A protocol violation, already answered: count it and close.
    case violated
    /// Answered, and the peer asked to close (HTTP `Connection: close`): close (FIN after the answers),
    /// not counted as a violation.
    case finished
}
