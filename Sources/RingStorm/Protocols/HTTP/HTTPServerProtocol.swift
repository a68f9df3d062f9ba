import RingStormEngine

/// The `http` protocol, server side: a benchmark target like nginx's `return 200`. Every request is
/// answered `200` with a body of `responseSize` bytes, keep-alive; a request with `Connection: close`
/// gets its answer with `Connection: close`, then the connection closes (FIN). A malformed request gets
/// `400`, a header section past `maxFrameSize` `431`, a body past `maxBodySize` `413`; each is counted
/// (`protocol_errors`) and closed.
///
/// Per request nothing is allocated: the bytes are parsed in place (`HTTPParser`, state per slot), the
/// answers are prebuilt and copied into one reusable buffer, sent once per receive.
final class HTTPServerProtocol: ServerProtocol {
    static var registers: Bool { false }

    private let states: UnsafeMutablePointer<HTTPParseState>
    private let slots: Int
    private let parser: HTTPParser
    private let ok: [UInt8]
    private let okClose: [UInt8]
    private let out: UnsafeMutableRawBufferPointer
    private var used = 0

    static let maxBodySize: Int64 = 64 << 20

    init(configuration: RingStormServer.Configuration, slots: Int) {
        self.slots = max(slots, 1)
        states = .allocate(capacity: self.slots)
        states.initialize(repeating: HTTPParseState(), count: self.slots)
        parser = HTTPParser(.request, maxHeaderSize: configuration.maxFrameSize, maxBodySize: Self.maxBodySize)
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: configuration.responseSize)
        ok = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        okClose = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
        out = .allocate(byteCount: max(64 * 1024, okClose.count), alignment: 16)
    }

    deinit {
        states.deinitialize(count: slots)
        states.deallocate()
        out.deallocate()
    }

    func accepted(slot: Int) { states[slot] = HTTPParseState() }

    static let badRequest = Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
    static let headersTooLarge = Array("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
    static let tooLarge = Array("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)

    @inline(__always)
    func received<Engine: NetworkEngine>(_ bytes: UnsafeRawBufferPointer, on id: ConnectionID, registered: Bool,
                                         engine: Engine, report: UnsafeMutablePointer<ServerReport>) -> Reception {
        let state = states + Int(id.slot)
        var i = 0
        while i < bytes.count {
            switch parser.next(bytes, at: i, &state.pointee) {
            case .needMore:
                i = bytes.count
            case .message(let next, _, let close):
                report.pointee.requests &+= 1
                if close {
                    append(okClose, id, engine)
                    flush(id, engine)
                    return .finished
                }
                append(ok, id, engine)
                i = next
            case .malformed:
                return refuse(Self.badRequest, id, engine)
            case .headersTooLarge:
                return refuse(Self.headersTooLarge, id, engine)
            case .unframed:
                return refuse(Self.tooLarge, id, engine)
            }
        }
        flush(id, engine)
        return .answered
    }

    func registerTimedOut<Engine: NetworkEngine>(_ id: ConnectionID, timeout: Int64, engine: Engine) {}

    static func complete(_ report: inout ServerReport, statistics: EngineStatistics) {}

    /// Answers to the requests before the bad one still go out, then the error, then the worker's FIN.
    private func refuse<Engine: NetworkEngine>(_ answer: [UInt8], _ id: ConnectionID, _ engine: Engine) -> Reception {
        append(answer, id, engine)
        flush(id, engine)
        return .violated
    }

    @inline(__always)
    private func append<Engine: NetworkEngine>(_ answer: [UInt8], _ id: ConnectionID, _ engine: Engine) {
        if used + answer.count > out.count { flush(id, engine) }
        answer.withUnsafeBytes { a in
            out.baseAddress!.advanced(by: used).copyMemory(from: a.baseAddress!, byteCount: a.count)
        }
        used += answer.count
    }

    @inline(__always)
    private func flush<Engine: NetworkEngine>(_ id: ConnectionID, _ engine: Engine) {
        guard used > 0 else { return }
        engine.send(id, UnsafeRawBufferPointer(rebasing: out[0..<used]))
        used = 0
    }
}
