/// A worker process of `--processes` that failed, as every JSON report names it (`failed_workers`):
/// which one, how it ended and which of its reports the totals include.
public struct FailedWorker: Codable, Sendable, Equatable {
    /// Which worker, counting from 1 (of the run's `--processes`).
    public var worker: Int
    public var pid: Int32
    /// How it ended, in words: `was killed by SIGKILL (Killed)`, `exited with status 1`, `exited with
    /// status 0 without sending its report`, `sent a report that does not decode ...`.
    public var how: String
    /// The last line it wrote to its standard error, if any (its own error message).
    public var lastError: String?
    /// What of its counts the report includes: `final` (its final report came), `last_progress` (the
    /// last progress report it sent before it died: its counts up to about a second before), or `none`.
    public var merged: Merged
    /// The pid of the worker started in its place (`serve --respawn`), if one was.
    public var respawnedAs: Int32?

    public enum Merged: String, Codable, Sendable {
        case final
        case lastProgress = "last_progress"
        case none
    }

    public init(worker: Int, pid: Int32, how: String, lastError: String? = nil, merged: Merged, respawnedAs: Int32? = nil) {
        self.worker = worker
        self.pid = pid
        self.how = how
        self.lastError = lastError
        self.merged = merged
        self.respawnedAs = respawnedAs
    }

    enum CodingKeys: String, CodingKey {
        case worker, pid, how
        case lastError = "last_error"
        case merged
        case respawnedAs = "respawned_as"
    }

    /// `worker 2 (pid 1234) was killed by SIGKILL (Killed); its last progress report is merged`.
    public var text: String {
        var text = "worker \(worker) (pid \(pid)) \(how)"
        if let lastError { text += ": " + lastError }
        switch merged {
        case .final: break
        case .lastProgress: text += "; its last progress report is merged"
        case .none: text += "; it sent no report, none of its counts are included"
        }
        if let respawnedAs { text += "; respawned as pid \(respawnedAs)" }
        return text
    }
}
