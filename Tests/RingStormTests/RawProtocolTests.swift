import Foundation
import Testing
@testable import RingStorm
import RingStormEngine

/// `--protocol raw`: escapes, templates, every framing under random splits, violations, validation, and
/// whole runs against the echo server on both backends.
@Suite struct RawProtocolTests {
    func configuration(_ raw: RawOptions) -> LoadGenerator.Configuration {
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 7200))
        c.wireProtocol = .raw
        c.raw = raw
        return c
    }

    func options(_ framing: RawFraming, max: Int = 1 << 20, first: [UInt8]? = nil, firstFraming: RawFraming? = nil) -> RawOptions {
        var raw = RawOptions()
        raw.message = Array("PING\r\n".utf8)
        raw.response = framing
        raw.maxResponseSize = max
        raw.firstMessage = first
        raw.firstResponse = firstFraming
        return raw
    }

    /// A response of `body` bytes framed as `framing` says.
    func frame(_ body: [UInt8], _ framing: RawFraming) -> [UInt8] {
        switch framing {
        case .size: return body
        case .delimiter(let d): return body + d
        case .lengthPrefix(let p):
            let length = UInt64(p.includesHeader ? body.count + p.headerSize : body.count)
            var field = (0..<p.width).map { UInt8(truncatingIfNeeded: length >> UInt64(8 * $0)) }
            if p.bigEndian { field.reverse() }
            return [UInt8](repeating: 0xEE, count: p.offset) + field + body
        }
    }

    /// Feeds `stream` in random pieces as a worker would, with `total` requests in flight at first.
    func feed(_ client: RawClientProtocol, _ stream: [UInt8], total: Int, seed: UInt64) -> (responses: Int, failed: Bool) {
        var rng = SplitMix(seed: seed)
        var state = client.newConnection(client: 0)
        var answered = 0
        var i = 0
        while i < stream.count {
            let n = min(stream.count - i, 1 + Int(rng.next() % 9))
            let got = Array(stream[i..<(i + n)]).withUnsafeBytes {
                client.received($0, &state, expecting: ClientExpectation(client: 0, firstMessage: false, inFlight: total - answered,
                                                                      oldestSequence: UInt64(answered)))
            }
            answered += got.responses
            if got.failure != nil { return (answered, true) }
            i += n
        }
        return (answered, false)
    }

    static var framings: [RawFraming] {
        var all: [RawFraming] = [.size(7), .delimiter(Array("\r\n".utf8)), .delimiter(Array("aab".utf8)), .delimiter(Array("\r\n\r\n".utf8))]
        for width in [1, 2, 4, 8] {
            for big in [true, false] {
                all.append(.lengthPrefix(RawLengthPrefix(width: width, bigEndian: big)))
                all.append(.lengthPrefix(RawLengthPrefix(width: width, bigEndian: big, offset: 3, includesHeader: true)))
            }
        }
        return all
    }

    @Test(arguments: framings)
    func everyFramingFindsEveryResponseUnderRandomSplits(_ framing: RawFraming) {
        let client = RawClientProtocol(configuration(options(framing, max: 300)))
        var rng = SplitMix(seed: 42)
        for round in 0..<20 {
            var stream: [UInt8] = []
            let count = 1 + Int(rng.next() % 12)
            for _ in 0..<count {
                var body: [UInt8]
                if case .size(let n) = framing {
                    body = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                } else if case .delimiter = framing {
                    // Bodies full of the delimiter's own bytes, never the whole delimiter.
                    body = (0..<Int(rng.next() % 40)).map { _ in [UInt8(ascii: "a"), UInt8(ascii: "\r"), UInt8(ascii: "x")][Int(rng.next() % 3)] }
                    if case .delimiter(let d) = framing, d == Array("aab".utf8) { body = body.map { $0 == UInt8(ascii: "a") ? UInt8(ascii: "b") : $0 } }
                } else {
                    body = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                }
                stream += frame(body, framing)
            }
            let got = feed(client, stream, total: count, seed: UInt64(round))
            #expect(got.responses == count && !got.failed, "\(framing): round \(round)")
        }
    }

    @Test func framingViolationsAreProtocolErrors() {
        let prefix = RawFraming.lengthPrefix(RawLengthPrefix(width: 2))
        // A length past the maximum.
        var client = RawClientProtocol(configuration(options(prefix, max: 100)))
        #expect(feed(client, frame([UInt8](repeating: 1, count: 120), prefix), total: 1, seed: 1).failed)
        // A length that does not even cover its own header.
        let counted = RawFraming.lengthPrefix(RawLengthPrefix(width: 4, bigEndian: false, offset: 2, includesHeader: true))
        client = RawClientProtocol(configuration(options(counted)))
        #expect(feed(client, [0, 0, 5, 0, 0, 0, 9, 9], total: 1, seed: 2).failed)
        // No delimiter within the maximum.
        client = RawClientProtocol(configuration(options(.delimiter([10]), max: 16)))
        #expect(feed(client, [UInt8](repeating: 65, count: 17), total: 1, seed: 3).failed)
        #expect(!feed(client, [UInt8](repeating: 65, count: 15) + [10], total: 1, seed: 3).failed)
        // More responses than requests in flight.
        client = RawClientProtocol(configuration(options(.size(2))))
        let extra = feed(client, [1, 2, 3, 4, 5, 6], total: 2, seed: 4)
        #expect(extra.responses == 2 && extra.failed)
        // A first answer followed by bytes nothing asked for.
        client = RawClientProtocol(configuration(options(.size(2), first: [1], firstFraming: .delimiter([0]))))
        var state = client.newConnection(client: 3)
        var got = [UInt8]([7, 7, 0, 9]).withUnsafeBytes {
            client.received($0, &state, expecting: ClientExpectation(client: 3, firstMessage: true, inFlight: 0, oldestSequence: 0))
        }
        #expect(got.failure?.phase == .register && !got.firstMessageAnswered)
        state = client.newConnection(client: 3)
        got = [UInt8]([7, 7, 0]).withUnsafeBytes {
            client.received($0, &state, expecting: ClientExpectation(client: 3, firstMessage: true, inFlight: 0, oldestSequence: 0))
        }
        #expect(got.firstMessageAnswered && got.failure == nil)
    }

    @Test func templatesFillPlaceholdersPerClientAndRequest() throws {
        var raw = options(.size(1), first: try RawBytes.parse("HELLO {client}\\r\\n"))
        raw.message = try RawBytes.parse("GET {seq} at {time_us} {other}\\x00")
        let client = RawClientProtocol(configuration(raw))
        var state = client.newConnection(client: 41)
        #expect(Array(client.firstMessage(client: 41, &state)) == Array("HELLO 41\r\n".utf8))
        #expect(Array(client.request(sequence: 0, timestamp: 12_345_678, &state)) == Array("GET 0 at 12345 {other}\0".utf8))
        #expect(Array(client.request(sequence: 18_446_744_073_709_551_615, timestamp: 999, &state))
                == Array("GET 18446744073709551615 at 0 {other}\0".utf8))
        // Without placeholders the request is sent as is.
        let constant = RawClientProtocol(configuration(options(.size(1))))
        var s = constant.newConnection(client: 0)
        #expect(Array(constant.request(sequence: 5, timestamp: 5, &s)) == Array("PING\r\n".utf8))
    }

    @Test func escapes() throws {
        #expect(try RawBytes.parse("a\\r\\n\\t\\0\\\\\\x7f\\xFFé") == [97, 13, 10, 9, 0, 92, 0x7F, 0xFF, 0xC3, 0xA9])
        #expect(throws: RawBytes.ParseError.danglingBackslash) { try RawBytes.parse("a\\") }
        #expect(throws: RawBytes.ParseError.unknownEscape("q")) { try RawBytes.parse("\\q") }
        #expect(throws: RawBytes.ParseError.badHex("4")) { try RawBytes.parse("\\x4") }
        #expect(RawBytes.escaped([13, 10, 0, 65]) == "\\r\\n\\x00A")
    }

    @Test func badCombinationsAreRefusedUpFront() {
        func refusal(_ edit: (inout LoadGenerator.Configuration) -> Void) -> LoadError? {
            var c = configuration(options(.size(4)))
            edit(&c)
            do { try LoadGenerator(configuration: c).validate() } catch { return error }
            return nil
        }
        #expect(refusal { _ in } == nil)
        #expect(refusal { $0.raw.message = nil } == .rawMessageMissing)
        #expect(refusal { $0.raw.response = nil } == .rawResponseFramingMissing)
        #expect(refusal { $0.raw.response = .size(0) } == .rawResponseSize(0, maximum: 1 << 20, first: false))
        #expect(refusal { $0.raw.response = .delimiter([]) } == .rawDelimiterEmpty(first: false))
        #expect(refusal { $0.raw.response = .lengthPrefix(RawLengthPrefix(width: 3)) } == .rawLengthPrefixWidth(3, first: false))
        #expect(refusal { $0.raw.firstResponse = .size(2) } == .rawFirstResponseWithoutFirstMessage)
        #expect(refusal { $0.raw.maxResponseSize = 0 } == .rawMaxResponseSize(0))
        #expect(refusal { $0.wireProtocol = .echo } == .rawOptionsNotFor(.echo))
        #expect(refusal { $0.firstMessageSize = 5 } == .registrationSizeNotFor(.raw))
    }

    /// Whole runs on both backends against a peer that answers each request (a line) with a response of
    /// 0-200 random bytes in this framing, written in random pieces of 1-64 bytes.
    /// (Each width in both byte orders, one of them with an offset and header-counting length; every
    /// combination is split at random in `everyFramingFindsEveryResponseUnderRandomSplits`.)
    @Test(arguments: Backend.allCases, framings.filter {
        switch $0 {
        case .delimiter(let d): d.count == 2
        case .lengthPrefix(let p): p.bigEndian == (p.offset == 0)
        case .size: true
        }
    })
    func everyFramingOverTheWireInRandomPieces(_ backend: Backend, _ framing: RawFraming) throws {
        let peer = HTTPTestPeer(requestEnd: [10]) { n in
            var rng = SplitMix(seed: UInt64(n) &* 7919)
            if case .size(let size) = framing { return (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
            var body = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if case .delimiter = framing { body = body.map { $0 == 13 ? 14 : $0 } }
            return self.frame(body, framing)
        }
        defer { peer.stop() }
        var c = LoadGenerator.Configuration(target: peer.address)
        c.backend = backend
        c.wireProtocol = .raw
        c.raw = options(framing, max: 400)
        c.raw.message = Array("REQ {seq}\n".utf8)
        c.connections = 2
        c.pacing = .openLoop(intervalNanoseconds: 2_000_000)  // several in flight when the peer lags
        c.durationNanoseconds = 300_000_000
        // How long to wait for the last answers: longer under a sanitizer (TSan left some unanswered at 300 ms).
        c.drainNanoseconds = Int64(300_000_000 * sanitizerScale)
        let report = try LoadGenerator(configuration: c).runBlocking()
        #expect(report.outcomes.total == 0, "\(framing): \(report.outcomes)")
        #expect(report.requests.sent > 20 && report.requests.answered == report.requests.sent, "\(framing)")
    }

    /// Whole runs against the echo server: what goes out comes back, so the request is its own response.
    /// A registration framed on its own, pipelined requests framed by a prefix or a delimiter; and one
    /// whose echoed length exceeds the maximum, a protocol error in phase request.
    @Test(arguments: Backend.allCases)
    func runsAgainstTheEchoServer(_ backend: Backend) throws {
        var serverConfiguration = RingStormServer.Configuration(listen: SocketAddress(ipv4Value: 0x7F00_0001, port: 0))
        serverConfiguration.backend = backend
        serverConfiguration.protocol = .echo
        let server = try RingStormServer(configuration: serverConfiguration)
        defer { server.stop(); _ = server.wait() }
        func run(_ raw: RawOptions) throws -> LoadReport {
            var c = LoadGenerator.Configuration(target: server.address)
            c.backend = backend
            c.wireProtocol = .raw
            c.raw = raw
            c.connections = 4
            c.pacing = .openLoop(intervalNanoseconds: 1_000_000)
            c.durationNanoseconds = 400_000_000
            return try LoadGenerator(configuration: c).runBlocking()
        }
        var raw = RawOptions()
        raw.firstMessage = Array("HELLO {client}\n".utf8)
        raw.firstResponse = .delimiter([10])
        raw.message = [7, 0, 0, 0] + Array("PING-42".utf8)
        raw.response = .lengthPrefix(RawLengthPrefix(width: 4, bigEndian: false))
        var report = try run(raw)
        #expect(report.outcomes.total == 0)
        #expect(report.connections.established == 4 && report.latency.register.count == 4)
        #expect(report.requests.sent > 100 && report.requests.answered == report.requests.sent)

        raw.message = Array("PING {seq} {time_us}\r\n".utf8)
        raw.response = .delimiter(Array("\r\n".utf8))
        report = try run(raw)
        #expect(report.outcomes.total == 0 && report.requests.sent > 100 && report.requests.answered == report.requests.sent)

        raw.firstMessage = nil
        raw.firstResponse = nil
        raw.message = [0, 200] + [UInt8](repeating: 1, count: 200)
        raw.response = .lengthPrefix(RawLengthPrefix(width: 2))
        raw.maxResponseSize = 100
        report = try run(raw)
        #expect(report.outcomes.request.protocolError == 4)
        #expect(report.requests.answered == 0)
    }
}
