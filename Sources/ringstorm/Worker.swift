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

/// Starts one worker process per assignment (this binary's `command`) and waits until each is ready;
/// if one fails, stops the rest and throws its failure.
func startedWorkers<Status: Decodable, Configuration>(_ command: String, _ assignments: [WorkerAssignment<Configuration>])
    throws -> WorkerProcesses<Status> {
    let workers: WorkerProcesses<Status>
    do {
        workers = try WorkerProcesses(arguments: [command], assignments: assignments)
    } catch {
        throw UsageError(error.description)
    }
    do {
        _ = try workers.waitUntilReady()
    } catch {
        workers.stop(graceNanoseconds: 2_000_000_000)
        throw UsageError(error.description)
    }
    return workers
}
