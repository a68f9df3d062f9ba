import RingStormEngine

/// What a worker process of `serve --processes N` tells its parent, as JSON (`WorkerChannel`): the
/// mergeable report and the live counts. The engines' own statistics stay in the worker.
public struct ServerProcessStatus: Sendable, Codable {
    public var report: ServerReport
    /// Connections open now.
    public var open: Int
    /// Listeners paused for want of descriptors now.
    public var pausedListeners: Int
    /// Engine notes (e.g. a kernel feature that was not available).
    public var notes: [String]

    public init(_ snapshot: ServerSnapshot) {
        report = snapshot.report
        open = snapshot.openConnections
        pausedListeners = snapshot.pausedListeners
        notes = snapshot.engine.notes
    }

    /// As a snapshot (engine statistics empty), so processes sum like threads.
    public var snapshot: ServerSnapshot {
        var s = ServerSnapshot(backend: Backend(rawValue: report.backend) ?? .uring)
        s.report = report
        s.openConnections = open
        s.pausedListeners = pausedListeners
        s.engine.notes = notes
        return s
    }

    enum CodingKeys: String, CodingKey {
        case report, open
        case pausedListeners = "paused_listeners"
        case notes
    }
}
