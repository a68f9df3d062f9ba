import Testing
import Glibc
import RingStormEngine

/// Engine settings small enough that many engines can come and go in one test process.
func testConfiguration(maxConnections: Int = 1024) -> EngineConfiguration {
    var configuration = EngineConfiguration()
    configuration.maxConnections = maxConnections
    configuration.submissionQueueEntries = 1024
    configuration.completionQueueEntries = 8192
    configuration.receiveBufferCount = 1024
    configuration.receiveBufferSize = 4096
    return configuration
}

/// An engine and one listener on loopback, port chosen by the kernel.
func engineListening(_ backend: Backend, on host: String = "127.0.0.1",
                     configuration: EngineConfiguration = testConfiguration()) throws -> (any NetworkEngine, ListenerID, SocketAddress) {
    let engine = try makeEngine(backend, configuration: configuration)
    let listener = try engine.listen(on: SocketAddress(parsing: host.contains(":") ? "[\(host)]:0" : "\(host):0"),
                                     backlog: 1024, reusePort: false)
    guard let address = engine.localAddress(of: listener), address.port != 0 else {
        throw SocketError("localAddress(of:) gave no bound port", nil)
    }
    return (engine, listener, address)
}

/// Polls `engine` (10 ms at a time) until `done()` holds or `seconds` pass, handing every event to
/// `handler`. True when `done()` held. `seconds` is scaled by `sanitizerScale` under a sanitizer.
@discardableResult
func pollUntil(_ engine: any NetworkEngine, seconds: Double = 5, pollNanoseconds: Int64 = 10_000_000,
               _ handler: (Event) -> Void, until done: () -> Bool) throws -> Bool {
    let deadline = monotonicNanoseconds() + Int64(seconds * sanitizerScale * 1e9)
    while !done() {
        if monotonicNanoseconds() >= deadline { return false }
        try engine.poll(timeoutNanoseconds: pollNanoseconds, handler)
    }
    return true
}

/// Polls for `seconds` whatever happens, handing every event to `handler`; returns the number of polls.
@discardableResult
func pollFor(_ engine: any NetworkEngine, seconds: Double, pollNanoseconds: Int64 = 10_000_000,
             _ handler: (Event) -> Void) throws -> Int {
    let deadline = monotonicNanoseconds() + Int64(seconds * 1e9)
    var polls = 0
    while monotonicNanoseconds() < deadline {
        try engine.poll(timeoutNanoseconds: pollNanoseconds, handler)
        polls += 1
    }
    return polls
}

/// The echo handler the tests run the engine with: `.received` is sent straight back, `.readEnded`
/// closes the connection in order (after what is queued has gone). Records what it saw.
final class EchoServer {
    let engine: any NetworkEngine
    /// Close (orderly) when the peer's side ends; off to observe half-closed connections.
    var closeOnReadEnd = true
    /// Echo what arrives; off to only record it.
    var echo = true

    private(set) var accepted: [ConnectionID] = []
    private(set) var acceptFailures: [Outcome] = []
    private(set) var readEnds: [ConnectionID: Outcome] = [:]
    private(set) var sendFailures: [ConnectionID: Outcome] = [:]
    private(set) var closed: [ConnectionID] = []
    private(set) var received: [ConnectionID: [UInt8]] = [:]
    private(set) var bytesReceived = 0
    private(set) var maxOpenConnections = 0
    /// Events after a connection's `.readEnded` or `.closed` that should not have come.
    private(set) var eventsAfterEnd: [String] = []
    /// Event kinds in order, per connection.
    private(set) var kinds: [ConnectionID: [EventKind]] = [:]

    /// Keep the received bytes per connection (for content checks); off for bulk tests.
    var recordBytes = false

    init(_ engine: any NetworkEngine) { self.engine = engine }

    func handle(_ event: Event) {
        let id = event.connection
        if event.kind != .timer && event.kind != .acceptFailed { kinds[id, default: []].append(event.kind) }
        switch event.kind {
        case .accepted:
            accepted.append(id)
        case .acceptFailed:
            acceptFailures.append(event.outcome)
        case .received:
            if readEnds[id] != nil || closed.contains(id) { eventsAfterEnd.append("received \(event.bytes.count) B on \(id) after its end") }
            bytesReceived += event.bytes.count
            if recordBytes { received[id, default: []] += Array(event.bytes) }
            if echo { engine.send(id, event.bytes) }
        case .readEnded:
            if readEnds[id] != nil { eventsAfterEnd.append("second readEnded on \(id)") }
            readEnds[id] = event.outcome
            if closeOnReadEnd { engine.close(id, mode: .orderly) }
        case .sendFailed:
            sendFailures[id] = event.outcome
        case .closed:
            if closed.contains(id) { eventsAfterEnd.append("second closed on \(id)") }
            closed.append(id)
        case .connected, .timer:
            break
        }
        maxOpenConnections = max(maxOpenConnections, engine.openConnections)
    }

    /// Sends `bytes` from `peer` and polls until their echo is back (2 s at most); true when the
    /// same bytes came back.
    func roundTrip(_ peer: BlockingSocket, _ bytes: [UInt8]) throws -> Bool {
        try peer.sendAll(bytes)
        var back: [UInt8] = []
        _ = try run(seconds: 2) {
            while case .data(let d) = peer.receive(wait: false) { back += d }
            return back.count >= bytes.count
        }
        return back == bytes
    }

    /// Polls until `done()` or `seconds` pass; true when done.
    @discardableResult
    func run(seconds: Double = 5, until done: () -> Bool) throws -> Bool {
        try pollUntil(engine, seconds: seconds, handle, until: done)
    }

    /// Echo rounds: in each, every peer sends `size(round, peer)` bytes of `payload` and the server runs
    /// until every peer has read back all it sent (each round `#expect`ed done within `seconds`). Returns
    /// what each peer sent and what came back, in full, for the caller's content check.
    func echoRounds(_ peers: [BlockingSocket], rounds: Int, seconds: Double,
                    size: (_ round: Int, _ peer: Int) -> Int) throws -> (sent: [[UInt8]], back: [[UInt8]]) {
        var sent = [[UInt8]](repeating: [], count: peers.count)
        var back = [[UInt8]](repeating: [], count: peers.count)
        for round in 0..<rounds {
            for (c, peer) in peers.enumerated() {
                let data = payload(size(round, c), seed: UInt64(round * 1_000 + c))
                try peer.sendAll(data)
                sent[c] += data
            }
            let done = try run(seconds: seconds) {
                for (c, peer) in peers.enumerated() where back[c].count < sent[c].count {
                    while case .data(let d) = peer.receive(wait: false) { back[c] += d }
                }
                return (0..<peers.count).allSatisfy { back[$0].count >= sent[$0].count }
            }
            #expect(done, "round \(round)")
        }
        return (sent, back)
    }
}
