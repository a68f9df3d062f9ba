import RingStormEngine

extension LoadWorkerPlan {
    /// The load loop for this plan, on the concrete engine chosen once (on the worker's own thread),
    /// so the loop is specialised for it.
    func makeWorker() throws(EngineError) -> any EngineWorker<LoadWorkerSnapshot> {
        var plan = self
        // One connection per client at most, plus a few slots of slack for closes still finishing.
        plan.configuration.engine.maxConnections = clientCount + 16
        switch plan.configuration.backend {
        case .uring: return LoadWorker(try UringEngine(configuration: plan.configuration.engine), plan)
        case .epoll: return LoadWorker(try EpollEngine(configuration: plan.configuration.engine), plan)
        }
    }
}
