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
    package var acceptErrorCount: Int { report.acceptErrors.values.reduce(0, +) }

    public static func + (a: ServerSnapshot, b: ServerSnapshot) -> ServerSnapshot {
        var s = a
        s.report.merge(b.report)
        s.openConnections += b.openConnections
        s.pausedListeners += b.pausedListeners
        s.engine = a.engine + b.engine
        return s
    }
}

/// What a worker process tells its parent: `{"report": {...}, "open": N, "paused_listeners": N, "notes": [...], "features": [...]}`.
extension ServerSnapshot: Codable {
    /// The JSON's fields; the engines' statistics other than their notes and features stay in the worker process.
    private struct Wire: Codable {
        var report: ServerReport
        var open: Int
        var paused_listeners: Int
        var notes: [String]
        var features: [String]?
    }

    public func encode(to encoder: any Encoder) throws {
        try Wire(report: report, open: openConnections, paused_listeners: pausedListeners, notes: engine.notes, features: engine.features).encode(to: encoder)
    }

    public init(from decoder: any Decoder) throws {
        let wire = try Wire(from: decoder)
        self.init(backend: Backend(rawValue: wire.report.backend) ?? .uring)
        report = wire.report
        openConnections = wire.open
        pausedListeners = wire.paused_listeners
        engine.notes = wire.notes
        engine.features = wire.features ?? []
    }
}
