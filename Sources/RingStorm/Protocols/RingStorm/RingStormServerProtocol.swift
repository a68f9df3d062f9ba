import RingStormEngine

/// The `ringstorm` protocol, server side (`Docs/protocol.md`): REGISTER answered with REGISTERED, then
/// REQUESTs answered with RESPONSEs; anything else, or a malformed frame, answered with ERROR.
///
/// Per message nothing is allocated: the bytes are decoded in place (`FrameDecoder`, one per slot), the
/// answers encoded into one reusable `FrameBuffer` and handed to `engine.send`, which copies.
final class RingStormServerProtocol: ServerProtocol {
    static var registers: Bool { true }

    private let decoders: UnsafeMutablePointer<FrameDecoder>
    private let out: UnsafeMutablePointer<FrameBuffer>
    private let slots: Int

    init(configuration: RingStormServer.Configuration, slots: Int) {
        self.slots = max(slots, 1)
        decoders = .allocate(capacity: self.slots)
        decoders.initialize(repeating: FrameDecoder(maxFrameSize: configuration.maxFrameSize), count: self.slots)
        out = .allocate(capacity: 1)
        out.initialize(to: FrameBuffer(capacity: 64 * 1024))
    }

    deinit {
        decoders.deinitialize(count: slots)
        decoders.deallocate()
        out.deinitialize(count: 1)
        out.deallocate()
    }

    func accepted(slot: Int) { decoders[slot].reset() }

    @inline(__always)
    func received<Engine: NetworkEngine>(_ bytes: UnsafeRawBufferPointer, on id: ConnectionID, registered: Bool,
                                         engine: Engine, report: UnsafeMutablePointer<ServerReport>) -> Reception {
        var isRegistered = registered
        var reception = Reception.answered
        let out = self.out
        do throws(ProtocolError) {
            try decoders[Int(id.slot)].feed(bytes) { (frame: Frame) throws(ProtocolError) in
                switch frame {
                case .request(let sequence, let timestamp, let payload):
                    guard isRegistered else { throw .notRegistered }
                    out.pointee.appendResponse(sequence: sequence, timestamp: timestamp, payload: payload)
                    report.pointee.requests &+= 1
                case .register(let clientID):
                    guard !isRegistered else { throw .unexpectedType(.register) }
                    isRegistered = true
                    reception = .registered
                    report.pointee.registered &+= 1
                    out.pointee.appendRegistered(clientID: clientID)
                default:
                    throw .unexpectedType(frame.type)
                }
            }
        } catch {
            // Answers to the frames before the bad one still go out, then ERROR (then the worker's FIN).
            out.pointee.appendError(error)
            reception = .violated
        }
        flush(id, engine)
        return reception
    }

    func registerTimedOut<Engine: NetworkEngine>(_ id: ConnectionID, timeout: Int64, engine: Engine) {
        out.pointee.appendError(code: ErrorCode.registerTimeout.rawValue,
                                text: "no REGISTER within \(DurationParsing.format(nanoseconds: timeout))")
        flush(id, engine)
    }

    static func complete(_ report: inout ServerReport, statistics: EngineStatistics) {}

    @inline(__always)
    private func flush<Engine: NetworkEngine>(_ id: ConnectionID, _ engine: Engine) {
        guard !out.pointee.isEmpty else { return }
        out.pointee.withBytes { engine.send(id, $0) }
        out.pointee.removeAll()
    }
}
