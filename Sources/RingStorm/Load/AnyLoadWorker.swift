import RingStormEngine

/// The load loop, whatever its engine.
protocol LoadLoop: AnyObject {
    func run(until stop: StopFlag, publish: (LoadWorkerSnapshot) -> Void)
    var snapshot: LoadWorkerSnapshot { get }
}

/// Chooses the concrete engine once, on the worker's own thread, so the loop is specialised for it.
final class AnyLoadWorker: EngineWorker {
    private let body: any LoadLoop

    init(_ plan: LoadWorkerPlan) throws(EngineError) {
        var engineConfiguration = plan.configuration.engine
        // One connection per client at most, plus a few slots of slack for closes still finishing.
        engineConfiguration.maxConnections = plan.clientCount + 16
        var plan = plan
        plan.configuration.engine = engineConfiguration
        switch plan.configuration.backend {
        case .uring: body = LoadWorker(try UringEngine(configuration: engineConfiguration), plan)
        case .epoll: body = LoadWorker(try EpollEngine(configuration: engineConfiguration), plan)
        }
    }

    func run(until stop: StopFlag, publish: (LoadWorkerSnapshot) -> Void) { body.run(until: stop, publish: publish) }
    var snapshot: LoadWorkerSnapshot { body.snapshot }
}
