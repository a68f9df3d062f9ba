import RingStorm

/// In a worker process of `--processes` (or the repro's server), its assignment and report channel; nil
/// when this process was started from a command line.
func inheritedWorker<Configuration>(_ type: Configuration.Type) throws -> (assignment: WorkerAssignment<Configuration>, channel: WorkerChannel)? {
    do {
        return try WorkerLaunch.inherited(type)
    } catch {
        throw UsageError(error.description)
    }
}
