import RingStormEngine

/// Where a client is in its life.
enum ClientStage: UInt8 {
    /// In the queue of connections to start (the connect-rate token bucket drains it).
    case queued
    /// Waiting out a reconnect backoff (its wake-up is in the wheel).
    case backingOff
    case connecting
    /// Connected; the protocol's first message (REGISTER, the echo first message) sent, its answer awaited.
    case registering
    /// Connected and registered: sending requests.
    case active
    /// We asked the engine to close; waiting for `.closed`.
    case closing
    /// Nothing more to do in this run.
    case done
}

/// One client's state: a plain value in flat memory, indexed by client number.
struct ClientState {
    var stage: ClientStage = .queued
    var connection: ConnectionID = .none
    /// Connections this client started (1 for the first).
    var attempt: UInt32 = 0
    /// Consecutive failed lifecycles: the reconnect backoff doubles with each.
    var consecutiveFailures: UInt32 = 0
    var connectStartedAt: Int64 = 0
    var connectedAt: Int64 = 0
    var registerSentAt: Int64 = 0
    /// Microseconds, -1 while unknown (for the connections log).
    var connectMicroseconds: Int64 = -1
    var registerMicroseconds: Int64 = -1
    /// Open loop: the intended time of the next request.
    var nextSendAt: Int64 = 0
    /// Requests in flight and the ring position of the oldest one's send time.
    var inFlight: Int32 = 0
    var oldest: Int32 = 0
    /// Sequence number of the next request.
    var sequence: UInt64 = 0
    /// Requests answered on the current connection.
    var answered: Int = 0
    /// The server announced it closes this connection: send nothing more on it.
    var peerCloses = false
    /// The source port the worker assigned this connection (`PortPool`), 0 when the kernel chose.
    var localPort: UInt16 = 0
}

/// A fixed-capacity FIFO of client numbers (clients waiting for a connect token).
struct ClientQueue {
    private let storage: FlatArray<Int32>
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) { storage = FlatArray(repeating: 0, count: max(capacity, 1)) }

    var isEmpty: Bool { count == 0 }

    /// Each client is queued at most once at a time, so the queue never holds more than the clients.
    mutating func push(_ client: Int) {
        precondition(count < storage.count, "client queue overflow")
        storage[(head + count) % storage.count] = Int32(client)
        count += 1
    }

    mutating func pop() -> Int? {
        guard count > 0 else { return nil }
        let client = Int(storage[head])
        head = (head + 1) % storage.count
        count -= 1
        return client
    }

    func deallocate() { storage.deallocate() }
}
