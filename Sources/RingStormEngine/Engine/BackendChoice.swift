/// Code written once against any engine, run on the concrete engine a `Backend` names.
///
/// Generic code cannot be handed to a closure in Swift, so the body is a value with a generic method.
/// `withEngine` is `@inlinable`: its switch is compiled into the caller's module, where the body's type
/// is known, so `body.run(on:)` is specialised for `UringEngine` or `EpollEngine` there and the loop it
/// starts calls the engine directly, not through `any NetworkEngine`.
public protocol EngineBody {
    associatedtype Result
    func run<Engine: NetworkEngine>(on engine: Engine) throws -> Result
}

/// The one place a backend is turned into an engine: creates it with `configuration` and runs `body`
/// on it. Servers, load generators and benchmark rigs all go through here.
@inlinable
public func withEngine<Body: EngineBody>(_ backend: Backend, configuration: EngineConfiguration = EngineConfiguration(),
                                         _ body: Body) throws -> Body.Result {
    switch backend {
    case .uring: try body.run(on: UringEngine(configuration: configuration))
    case .epoll: try body.run(on: EpollEngine(configuration: configuration))
    }
}

/// Creates an engine of the chosen backend, for callers that hold it as an existential (tests, tools);
/// loops that run per event should use `withEngine` instead.
public func makeEngine(_ backend: Backend, configuration: EngineConfiguration = EngineConfiguration()) throws(EngineError) -> any NetworkEngine {
    struct Make: EngineBody {
        func run<Engine: NetworkEngine>(on engine: Engine) -> any NetworkEngine { engine }
    }
    do { return try withEngine(backend, configuration: configuration, Make()) } catch let error as EngineError { throw error } catch {
        preconditionFailure("engine set-up throws only EngineError, got \(error)")
    }
}
