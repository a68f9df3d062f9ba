import RingStormEngine

/// The `echo` protocol, server side: every byte received is sent back, in order, with the engine's
/// backpressure. No framing, no registration: a receive is one message. The engine copies on `send`, so
/// the received buffer goes straight back; nothing per connection is kept here.
final class EchoServerProtocol: ServerProtocol {
    static var registers: Bool { false }

    init(configuration: RingStormServer.Configuration, slots: Int) {}

    @inline(__always)
    func accepted(slot: Int) {}

    @inline(__always)
    func received<Engine: NetworkEngine>(_ bytes: UnsafeRawBufferPointer, on id: ConnectionID, registered: Bool,
                                         engine: Engine, report: UnsafeMutablePointer<ServerReport>) -> Reception {
        report.pointee.requests &+= 1
        engine.send(id, bytes)
        return .answered
    }

    func registerTimedOut<Engine: NetworkEngine>(_ id: ConnectionID, timeout: Int64, engine: Engine) {}

    /// Every byte received is echoed: the engine's count, nothing counted per message.
    static func complete(_ report: inout ServerReport, statistics: EngineStatistics) {
        report.bytesEchoed = statistics.bytesReceived
    }
}
