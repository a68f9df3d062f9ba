import RingStormEngine

/// A server's counters at one moment: the report's counts plus what a live line needs. Worker threads
/// each publish one; `RingStormServer.progress` sums them.
public struct ServerSnapshot: Sendable {
    /// The counts of the final report so far (`durationSeconds` is the time since the server started).
    public var report: ServerReport
    /// Connections open now.
    public var openConnections = 0
    /// Listeners paused for want of descriptors now.
    public var pausedListeners = 0
    /// The engines' own counters: syscalls by name, outcomes per operation, backend notes.
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
