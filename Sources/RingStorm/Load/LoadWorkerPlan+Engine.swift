import RingStormEngine

extension LoadWorkerPlan {
    /// The load loop for this plan, on the concrete engine chosen once (on the worker's own thread),
    /// so the loop is specialised for it.
    func makeWorker() throws(EngineError) -> any EngineWorker<LoadWorkerSnapshot> {
        var plan = self
        // One connection per client at most, plus a few slots of slack for closes still finishing.
        plan.configuration.engine.maxConnections = clientCount + 16
        struct Make: EngineBody {
            let plan: LoadWorkerPlan
            func run<E: NetworkEngine>(on engine: E) -> any EngineWorker<LoadWorkerSnapshot> { LoadWorker(engine, plan) }
        }
        do { return try withEngine(plan.configuration.backend, configuration: plan.configuration.engine, Make(plan: plan)) }
        catch let error as EngineError { throw error }
        catch { preconditionFailure("engine set-up throws only EngineError, got \(error)") }
    }
}
