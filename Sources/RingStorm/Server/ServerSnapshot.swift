import RingStormEngine

/// A server's counters at one moment: the report's counts plus what a live line needs. Worker threads
/// each publish one and `RingStormServer.progress` sums them; a worker process of `serve --processes N`
/// sends its own to the parent as JSON (`WorkerChannel`), which sums them the same way.
public struct ServerSnapshot: Sendable {
    /// The counts of the final report so far (`durationSeconds` is the time since the server started).
    public var report: ServerReport
    /// Connections open now.
    public var openConnections = 0
    /// Listeners paused for want of descriptors now.
    public var pausedListeners = 0
    /// The engines' own counters: syscalls by name, outcomes per operation, backend notes. Only the
    /// notes cross a process boundary (the rest stays in the worker process).
    public var engine: EngineStatistics

    public init(backend: Backend) {
        report = ServerReport(backend: backend)
        engine = EngineStatistics(backend: backend)
    }

    /// Failed accepts of every errno.
    public var acceptErrorCount: Int { report.acceptErrors.values.reduce(0, +) }

    public static func + (a: ServerSnapshot, b: ServerSnapshot) -> ServerSnapshot {
        var s = a
        s.report.merge(b.report)
        s.openConnections += b.openConnections
        s.pausedListeners += b.pausedListeners
        s.engine = a.engine + b.engine
        return s
    }
}

/// What a worker process tells its parent: `{"report": {...}, "open": N, "paused_listeners": N, "notes": [...]}`.
extension ServerSnapshot: Codable {
    enum CodingKeys: String, CodingKey {
        case report, open
        case pausedListeners = "paused_listeners"
        case notes
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(report, forKey: .report)
        try c.encode(openConnections, forKey: .open)
        try c.encode(pausedListeners, forKey: .pausedListeners)
        try c.encode(engine.notes, forKey: .notes)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let report = try c.decode(ServerReport.self, forKey: .report)
        self.init(backend: Backend(rawValue: report.backend) ?? .uring)
        self.report = report
        openConnections = try c.decode(Int.self, forKey: .open)
        pausedListeners = try c.decode(Int.self, forKey: .pausedListeners)
        engine.notes = try c.decode([String].self, forKey: .notes)
    }
}
