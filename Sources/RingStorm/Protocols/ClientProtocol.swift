import RingStormEngine

/// The client side of a wire protocol, as the load generator speaks it: it encodes a connection's first
/// message and its requests, and decodes what comes back into "registration answered", "N responses
/// complete" or "protocol error". Everything else (pacing, phases, outcomes, latencies, timeouts,
/// reconnects, the connections log) is the one `LoadWorker`'s.
///
/// The worker is generic over it (`LoadWorker<UringEngine, RingStormClientProtocol>`), so every call is direct
/// and specialised; nothing is allocated per message. One instance serves one worker thread, so it may
/// keep encode buffers; what belongs to one connection (a parse state, a partial count) is
/// `Connection`, kept by the worker in flat storage beside its other per-client state and made afresh
/// (`newConnection`) at every connect.
///
/// Adding a protocol: a file in `Protocols/NAME/` with a type conforming to this, and a case in
/// `LoadGenerator.WireProtocol` with its line in `WireProtocol.withClient` (the one place a protocol
/// name becomes a type).
protocol ClientProtocol: AnyObject {
    /// Per-connection state: e.g. a frame decoder (a response framing that needs parse state), the bytes
    /// of an echo seen so far.
    associatedtype Connection

    init(_ configuration: LoadGenerator.Configuration)

    /// Checks the configuration's protocol-specific values (sizes, options meant for another protocol).
    static func validate(_ configuration: LoadGenerator.Configuration) throws(LoadError)

    /// Whether a connection sends a first message and awaits its answer before its requests (phase
    /// `register`).
    static func sendsFirstMessage(_ configuration: LoadGenerator.Configuration) -> Bool

    /// The state of a connection of client number `client` (global, as in `firstMessage`) that has just
    /// connected.
    func newConnection(client: Int) -> Connection

    /// The first message of client number `client` (global among all workers and processes, so it can
    /// fill per-client placeholders). Valid until the next call on this instance.
    func firstMessage(client: Int, _ connection: inout Connection) -> UnsafeRawBufferPointer

    /// Request number `sequence` (0, 1, ... per connection), intended for `timestamp` (monotonic ns).
    /// Valid until the next call on this instance.
    func request(sequence: UInt64, timestamp: Int64, _ connection: inout Connection) -> UnsafeRawBufferPointer

    /// Decodes `bytes` received on a connection that expects what `expecting` says.
    func received(_ bytes: UnsafeRawBufferPointer, _ connection: inout Connection,
                  expecting: ClientExpectation) -> ClientReceived
}

/// What a connection waits for when bytes arrive.
struct ClientExpectation {
    /// The global client number.
    var client: Int
    /// Waiting for the answer to the first message (phase `register`); otherwise requests are answered.
    var firstMessage: Bool
    /// Requests sent and not answered, oldest first.
    var inFlight: Int
    /// The sequence number of the oldest request in flight.
    var oldestSequence: UInt64
}

/// What received bytes amounted to. Responses answer the oldest requests in flight, in order (the
/// worker holds their send times); a failure comes after them.
struct ClientReceived {
    /// The first message was answered.
    var firstMessageAnswered = false
    /// Requests answered, oldest first.
    var responses = 0
    /// The server said it closes the connection after these responses (HTTP `Connection: close`): no
    /// more requests go out on it; its close, when it comes, is classified as any other.
    var peerCloses = false
    /// HTTP: the answered requests' status classes (zero for other protocols).
    var http = HTTPStatusCounts()
    /// The bytes broke the protocol: the connection ends with `protocol_error`.
    var failure: ClientProtocolFailure?
}

/// A protocol error seen by a client.
struct ClientProtocolFailure {
    /// The phase it is counted in; nil: the connection's current phase.
    var phase: Phase?
    /// The server's own reason, when it sent one (e.g. an ERROR frame's code), counted beside it.
    var serverReason: String?
}

extension LoadGenerator.WireProtocol {
    /// The one place a protocol name becomes its client type: hands the concrete type to `body` (as
    /// `withEngine` does for backends), so the load loop is concrete in both engine and protocol.
    func withClient<Body: ClientProtocolBody>(_ body: Body) -> Body.Result {
        switch self {
        case .ringstorm: body.run(RingStormClientProtocol.self)
        case .echo: body.run(EchoClientProtocol.self)
        case .raw: body.run(RawClientProtocol.self)
        case .http: body.run(HTTPClientProtocol.self)
        }
    }

    /// The client type, for what is not per event (validation).
    var client: any ClientProtocol.Type {
        struct Name: ClientProtocolBody {
            func run<P: ClientProtocol>(_ client: P.Type) -> any ClientProtocol.Type { client }
        }
        return withClient(Name())
    }
}

/// Code written once against any client protocol, run with the concrete type a `WireProtocol` names.
protocol ClientProtocolBody {
    associatedtype Result
    func run<P: ClientProtocol>(_ client: P.Type) -> Result
}
