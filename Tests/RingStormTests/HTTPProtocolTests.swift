import Foundation
import Glibc
import Synchronization
import Testing
@testable import RingStorm
import RingStormEngine

/// `--protocol http`: the parser under random splits, the load side against in-test HTTP peers, and
/// `serve --protocol http` against hostile clients, on both backends.
@Suite struct HTTPProtocolTests {
    // MARK: The parser

    /// Feeds `stream` in random pieces; returns each message's status and close flag, and how it ended.
    func parse(_ parser: HTTPParser, _ stream: [UInt8], seed: UInt64, maxPiece: Int = 9) -> (messages: [(Int, Bool)], end: HTTPParser.Step) {
        var rng = SplitMix(seed: seed)
        var state = HTTPParseState()
        var messages: [(Int, Bool)] = []
        var i = 0
        while i < stream.count {
            let n = min(stream.count - i, 1 + Int(rng.next() % UInt64(maxPiece)))
            let piece = Array(stream[i..<(i + n)])
            var at = 0
            while at < piece.count {
                let step = piece.withUnsafeBytes { parser.next($0, at: at, &state) }
                switch step {
                case .message(let next, let status, let close):
                    messages.append((status, close))
                    at = next
                case .needMore: at = piece.count
                default: return (messages, step)
                }
            }
            i += n
        }
        return (messages, .needMore)
    }

    static let responses: [(String, Int, Bool)] = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, false),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, false),
        ("HTTP/1.1 404 Not Found\r\nCONTENT-LENGTH:  3 \r\nConnection: keep-alive\r\n\r\nabc", 404, false),
        ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: Close\r\n\r\n", 503, true),
        ("HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 204, false),
        ("HTTP/1.0 301 Moved\nLocation: /x\nContent-Length: 2\n\nab", 301, true),
        ("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\na", 200, false),
        ("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, false),
    ]

    @Test func responsesUnderRandomSplits() {
        let parser = HTTPParser(.response, maxHeaderSize: 4096)
        var rng = SplitMix(seed: 7)
        for round in 0..<200 {
            var stream: [UInt8] = []
            var expected: [(Int, Bool)] = []
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                let r = Self.responses[Int(rng.next() % UInt64(Self.responses.count))]
                stream += Array(r.0.utf8)
                expected.append((r.1, r.2))
            }
            let got = parse(parser, stream, seed: UInt64(round), maxPiece: round % 2 == 0 ? 3 : 40)
            #expect(got.end == .needMore)
            #expect(got.messages.map(\.0) == expected.map(\.0) && got.messages.map(\.1) == expected.map(\.1), "round \(round)")
        }
    }

    @Test func brokenResponsesAreRefused() {
        let parser = HTTPParser(.response, maxHeaderSize: 256, maxBodySize: 1000)
        let cases: [(String, HTTPParser.Step)] = [
            ("HTTP/2 200 OK\r\n\r\n", .malformed),
            ("HTTP/1.1 2x0 OK\r\n\r\n", .malformed),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", .malformed),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", .malformed),
            ("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", .malformed),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformed),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", .malformed),
            ("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", .unframed),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n", .unframed),
            ("HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: 300) + "\r\n\r\n", .headersTooLarge),
        ]
        for (text, expected) in cases {
            for seed in 0..<5 {
                #expect(parse(parser, Array(text.utf8), seed: UInt64(seed)).end == expected, "\(text.prefix(40))")
            }
        }
    }

    @Test func requestsUnderRandomSplits() {
        let parser = HTTPParser(.request, maxHeaderSize: 1024, maxBodySize: 100)
        let one = "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n"
            + "POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"
            + "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            + "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            + "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
            + "GET / HTTP/1.0\r\n\r\n"
        for seed in 0..<100 {
            let got = parse(parser, Array(one.utf8), seed: UInt64(seed), maxPiece: seed % 3 == 0 ? 1 : 20)
            #expect(got.end == .needMore && got.messages.map(\.1) == [false, false, false, false, true, true])
        }
        #expect(parse(parser, Array("GARBAGE\r\n\r\n".utf8), seed: 1).end == .malformed)
        #expect(parse(parser, Array("GET / HTTP/1.1\r\nContent-Length: 101\r\n\r\n".utf8), seed: 1).end == .unframed)
        #expect(parse(parser, Array(("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 2000)).utf8), seed: 1).end == .headersTooLarge)
        #expect(parse(parser, Array("GET / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n".utf8), seed: 1).end == .malformed)
    }

    /// Feeds `stream` cut at `cuts` (offsets, ascending); returns each message as (its end in the stream,
    /// status, close) and the verdict that stopped it (`.needMore` if none did).
    func feed(_ parser: HTTPParser, _ stream: [UInt8], cuts: [Int]) -> (messages: [[Int]], end: HTTPParser.Step) {
        var state = HTTPParseState()
        var messages: [[Int]] = []
        let bounds = [0] + cuts + [stream.count]
        for (from, to) in zip(bounds, bounds.dropFirst()) where from < to {
            let piece = Array(stream[from..<to])
            var at = 0
            while at < piece.count {
                let step = piece.withUnsafeBytes { parser.next($0, at: at, &state) }
                switch step {
                case .message(let next, let status, let close):
                    messages.append([from + next, status, close ? 1 : 0])
                    at = next
                case .needMore: at = piece.count
                default: return (messages, step)
                }
            }
        }
        return (messages, .needMore)
    }

    static let nginx = "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Wed, 02 Dec 2026 12:37:47 GMT\r\n"
        + "Content-Type: application/octet-stream\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"

    /// Whole lines are taken at once and cut ones byte by byte: fed whole, cut anywhere in two (inside a
    /// name, between CR and LF, at the limit), or a byte at a time, every stream must give the same
    /// messages at the same offsets and the same verdict.
    @Test func wholeLinesAndCutLinesAgree() {
        let nginx = Array(Self.nginx.utf8)
        let responses: [(String, HTTPParser)] = [
            (String(repeating: Self.nginx, count: 3), HTTPParser(.response)),
            (Self.nginx, HTTPParser(.response, maxHeaderSize: nginx.count)),
            (Self.nginx, HTTPParser(.response, maxHeaderSize: nginx.count - 1)),
            (Self.nginx, HTTPParser(.response, maxHeaderSize: 17)),
            (Self.nginx + Self.nginx, HTTPParser(.response, maxHeaderSize: nginx.count)),
            (Self.nginx, HTTPParser(.response, headRequests: true)),
            ("HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 3\r\nconnection: Keep-Alive, CLOSE\r\n\r\nabc", HTTPParser(.response)),
            ("HTTP/1.0 200 OK\r\nContent-Lengtg: 3\r\nConnectiom: keep-alive\r\nContent-Length:\t2\t\r\n\r\nab", HTTPParser(.response)),
            ("HTTP/1.0 200 \r\nTransfer-EncodinG: gzip,\tCHUNKED\r\nConnection: keep-alive\r\n\r\n1;x\r\na\r\n0\r\nT: 1\r\n\r\n", HTTPParser(.response)),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", HTTPParser(.response)),
            ("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", HTTPParser(.response, maxBodySize: 98)),
            ("HTTP/1.1 200 OK\r\nContent-Length: 9x\r\n\r\n", HTTPParser(.response)),
            ("HTTP/1.1 200 OK\r\nConnection: close\rx\n\r\n", HTTPParser(.response)),
            ("HTTP/1.1 200 OK\r\nX-A: a\rb\u{1}\r\nContent-Length: 0\r\n\r\n", HTTPParser(.response)),
            ("HTTP/1.1 200 O\u{7F}K\r\nContent-Length: 0\r\n\r\n", HTTPParser(.response)),
            ("HTTP/1.1 200 OK\r\nBad Header: 1\r\n\r\n", HTTPParser(.response, maxHeaderSize: 30)),
            ("HTTP/1.1 200 OK\r\nBad Header: 1\r\n\r\n", HTTPParser(.response, maxHeaderSize: 20)),
            ("HTTP/1.1 101 Switching\r\n\r\nHTTP/1.1 204 No Content\n\n", HTTPParser(.response)),
            ("GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.0\nContent-Length: 2\n\nhiGET / HTTP/1.1\r\nConnection: close\r\n\r\n", HTTPParser(.request)),
            ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", HTTPParser(.request, maxHeaderSize: 28)),
            ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", HTTPParser(.request, maxHeaderSize: 27)),
            ("GET /\u{7F} HTTP/1.1\r\n\r\n", HTTPParser(.request)),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", HTTPParser(.request)),
            ("HTTP/1.0 200 OK\r\nConnection: keep\ralive\r\nContent-Length: 0\r\n\r\n", HTTPParser(.response)),
            ("HTTP/1.0 200 OK\r\nConnection:KEEP-ALIVE\r\nContent-Length: 0\r\n\r\n", HTTPParser(.response)),
            ("HTTP/1.0 200 OK\r\nConnection: keep-alive \r\nContent-Length: 0\r\n\r\n", HTTPParser(.response)),
        ]
        for (text, parser) in responses {
            let stream = Array(text.utf8)
            let oneByOne = feed(parser, stream, cuts: Array(1..<stream.count))
            #expect(feed(parser, stream, cuts: []) == oneByOne, "\(text.prefix(60).debugDescription)")
            for cut in 1..<stream.count {
                let got = feed(parser, stream, cuts: [cut])
                #expect(got == oneByOne, "\(text.prefix(60).debugDescription) cut at \(cut)")
                if got != oneByOne { break }
            }
        }
        // What they agree on: pipelined nginx answers, the header limit counted to the byte.
        let three = feed(HTTPParser(.response), Array(String(repeating: Self.nginx, count: 3).utf8), cuts: [])
        #expect(three.end == .needMore && three.messages == [1, 2, 3].map { [$0 * nginx.count, 200, 0] })
        #expect(feed(HTTPParser(.response, maxHeaderSize: nginx.count), nginx, cuts: []).messages == [[nginx.count, 200, 0]])
        #expect(feed(HTTPParser(.response, maxHeaderSize: nginx.count - 1), nginx, cuts: []).end == .headersTooLarge)
        let close = feed(HTTPParser(.response), Array(responses[6].0.utf8), cuts: [])
        #expect(close.end == .needMore && close.messages == [[responses[6].0.utf8.count, 200, 1]])
        let keepAlive10 = feed(HTTPParser(.response), Array(responses[8].0.utf8), cuts: [])
        #expect(keepAlive10.end == .needMore && keepAlive10.messages == [[responses[8].0.utf8.count, 200, 0]])
        #expect(feed(HTTPParser(.response), Array(responses[9].0.utf8), cuts: []).end == .malformed)
        #expect(feed(HTTPParser(.response, maxBodySize: 98), Array(responses[10].0.utf8), cuts: []).end == .unframed)
        #expect(feed(HTTPParser(.response, maxHeaderSize: 30), Array(responses[15].0.utf8), cuts: []).end == .malformed)
        #expect(feed(HTTPParser(.response, maxHeaderSize: 20), Array(responses[16].0.utf8), cuts: []).end == .headersTooLarge)
        #expect(feed(HTTPParser(.request, maxHeaderSize: 28), Array(responses[19].0.utf8), cuts: []).messages.count == 1)
        #expect(feed(HTTPParser(.request, maxHeaderSize: 27), Array(responses[20].0.utf8), cuts: []).end == .headersTooLarge)
        // `keep-alive` is recognised in any case, but a CR where its `-` goes is not a dash.
        #expect(feed(HTTPParser(.response), Array(responses[23].0.utf8), cuts: []).end == .malformed)
        #expect(feed(HTTPParser(.response), Array(responses[24].0.utf8), cuts: []).messages.map { $0[2] } == [0])
        #expect(feed(HTTPParser(.response), Array(responses[25].0.utf8), cuts: []).messages.map { $0[2] } == [0])
    }

    /// The token mask is RFC 9110's tchar, byte for byte.
    @Test func tokenBytesAreTchar() {
        let tchar = Set(Array("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8))
        for b in 0...255 {
            #expect(HTTPParser.isTokenByte(UInt8(b)) == tchar.contains(UInt8(b)), "byte \(b)")
        }
    }

    @Test func requestIsBuiltOnceWithHostAndLength() {
        var h = HTTPOptions()
        h.method = "POST"
        h.path = "/submit"
        h.headers = ["X-A: 1"]
        h.body = Array("hi".utf8)
        #expect(String(decoding: h.request(host: "127.0.0.1:80"), as: UTF8.self)
                == "POST /submit HTTP/1.1\r\nHost: 127.0.0.1:80\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi")
        h.headers = ["host: example"]
        h.body = []
        h.method = "GET"
        #expect(String(decoding: h.request(host: "127.0.0.1:80"), as: UTF8.self) == "GET /submit HTTP/1.1\r\nhost: example\r\n\r\n")
    }

    @Test func badRequestsAreRefusedUpFront() {
        func refusal(_ edit: (inout HTTPOptions) -> Void) -> LoadError? {
            var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 80))
            c.wireProtocol = .http
            edit(&c.http)
            do { try LoadGenerator(configuration: c).validate() } catch { return error }
            return nil
        }
        #expect(refusal { _ in } == nil)
        #expect(refusal { $0.method = "G T" } == .httpMethod("G T"))
        #expect(refusal { $0.path = "x" } == .httpPath("x"))
        #expect(refusal { $0.headers = ["NoColon"] } == .httpHeader("NoColon"))
        #expect(refusal { $0.headers = ["Content-Length: 3"] } == .httpHeaderSetByLoad("Content-Length: 3"))
        var c = LoadGenerator.Configuration(target: SocketAddress(ipv4Value: 0x7F00_0001, port: 80))
        c.http.path = "/x"
        #expect(throws: LoadError.httpOptionsNotFor(.ringstorm)) { try LoadGenerator(configuration: c).validate() }
    }

    // MARK: The load side against in-test peers

    /// A short run; open loop (a request every 2 ms per connection) unless `pacing` says otherwise, so the
    /// tests running beside it keep their CPU.
    func run(_ backend: Backend, _ peer: HTTPTestPeer, pacing: LoadGenerator.Pacing = .openLoop(intervalNanoseconds: 2_000_000),
             reconnect: Bool = false, edit: (inout LoadGenerator.Configuration) -> Void = { _ in }) throws -> LoadReport {
        var c = LoadGenerator.Configuration(target: peer.address)
        c.backend = backend
        c.wireProtocol = .http
        c.connections = 2
        c.pacing = pacing
        c.durationNanoseconds = 400_000_000
        c.requestTimeoutNanoseconds = 2_000_000_000
        c.reconnect = reconnect
        c.reconnectMinimumNanoseconds = 10_000_000
        c.reconnectMaximumNanoseconds = 20_000_000
        c.drainNanoseconds = 300_000_000
        edit(&c)
        defer { peer.stop() }
        return try LoadGenerator(configuration: c).runBlocking()
    }

    @Test(arguments: Backend.allCases)
    func contentLengthAndChunkedPipelinedInPieces(_ backend: Backend) throws {
        let peer = HTTPTestPeer { n in
            n % 2 == 0 ? "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                : "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        }
        let report = try run(backend, peer, pacing: .closedLoop(pipeline: 4)) { $0.durationNanoseconds = 250_000_000 }
        #expect(report.outcomes.total == 0)
        #expect(report.requests.sent > 20 && report.requests.answered == report.requests.sent)
        #expect(report.http?.success == report.requests.answered && report.http?.non2xx == 0)
    }

    @Test(arguments: Backend.allCases)
    func non2xxIsCountedApart(_ backend: Backend) throws {
        let peer = HTTPTestPeer { n in
            n % 3 == 0 ? "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n" : "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
        }
        let report = try run(backend, peer)
        #expect(report.outcomes.total == 0 && report.requests.answered > 10)
        #expect(report.http?.success == 0)
        #expect(report.http?.serverError ?? 0 > 0 && report.http?.clientError ?? 0 > 0)
        #expect(report.http?.non2xx == report.requests.answered)
    }

    /// The server closes each keep-alive connection after its third answer (`Connection: close`): a
    /// close counted like any other, and the clients reconnect.
    @Test(arguments: Backend.allCases)
    func serverClosingKeepAliveConnectionsIsAClose(_ backend: Backend) throws {
        let peer = HTTPTestPeer(closeAfter: 3) { n in
            n == 2 ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok" : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        }
        let report = try run(backend, peer, pacing: .closedLoop(pipeline: 1), reconnect: true)
        let closes = report.outcomes.idle.closed + report.outcomes.request.closed
        #expect(closes >= 2)
        #expect(report.connections.attempted > 2)
        // After the `Connection: close` answer the client sends nothing more: the FIN finds it idle.
        #expect(report.outcomes.total == report.outcomes.idle.closed, "\(report.outcomes)")
        #expect(report.requests.answered >= 3 * closes)
        #expect(report.outcomes.request.protocolError == 0)
    }

    @Test(arguments: Backend.allCases)
    func malformedAndOversizedResponsesAreProtocolErrors(_ backend: Backend) throws {
        var report = try run(backend, HTTPTestPeer { _ in "HTTP/1.1 OK 200\r\n\r\n" })
        #expect(report.outcomes.request.protocolError == 2 && report.requests.answered == 0)
        report = try run(backend, HTTPTestPeer { _ in "HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "b", count: 5000) + "\r\nContent-Length: 0\r\n\r\n" }) {
            $0.http.maxHeaderSize = 1024
        }
        #expect(report.outcomes.request.protocolError == 2 && report.requests.answered == 0)
        report = try run(backend, HTTPTestPeer { _ in "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + String(repeating: "b", count: 5000) }) {
            $0.http.maxBodySize = 1000
        }
        #expect(report.outcomes.request.protocolError == 2 && report.requests.answered == 0)
    }

    // MARK: serve --protocol http

    @Test(arguments: Backend.allCases)
    func serveAnswersSplitPipelinedAndHostileRequests(_ backend: Backend) async throws {
        var configuration = RingStormServer.Configuration.testing(backend)
        configuration.protocol = .http
        configuration.responseSize = 10
        configuration.maxFrameSize = 1024
        let server = try RingStormServer(configuration: configuration)
        let port = server.address.port
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nxxxxxxxxxx"
        try await onThread {
            // Byte by byte, then three pipelined in one write, then Connection: close.
            let client = try ServerTestClient(port: port)
            for b in Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8) {
                client.send(bytes: [b])
                client.waitUntilAcknowledged()
            }
            #expect(Self.read(client, until: ok.utf8.count) == ok)
            client.send(bytes: Array(String(repeating: "GET /x HTTP/1.1\r\n\r\n", count: 3).utf8))
            #expect(Self.read(client, until: 3 * ok.utf8.count) == String(repeating: ok, count: 3))
            client.send(bytes: Array("GET / HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))
            #expect(Self.readToEnd(client) == "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nxxxxxxxxxx")

            let garbage = try ServerTestClient(port: port)
            garbage.send(bytes: Array("\u{1}\u{2}GARBAGE\r\n\r\n".utf8))
            #expect(Self.readToEnd(garbage).hasPrefix("HTTP/1.1 400 "))

            let huge = try ServerTestClient(port: port)
            huge.send(bytes: Array(("GET / HTTP/1.1\r\nX-Huge: " + String(repeating: "h", count: 4000) + "\r\n\r\n").utf8))
            #expect(Self.readToEnd(huge).hasPrefix("HTTP/1.1 431 "))
        }
        try await waitUntil { server.progress.report.protocolErrors == 2 }
        server.stop()
        let report = server.wait()
        #expect(report.requests == 5)
        #expect(report.protocolErrors == 2)
    }

    @Test(arguments: Backend.allCases)
    func loadDrivesServeOverHTTP(_ backend: Backend) throws {
        var configuration = RingStormServer.Configuration.testing(backend)
        configuration.protocol = .http
        configuration.responseSize = 100
        let server = try RingStormServer(configuration: configuration)
        var c = LoadGenerator.Configuration(target: server.address)
        c.backend = backend
        c.wireProtocol = .http
        c.connections = 8
        c.pacing = .openLoop(intervalNanoseconds: 1_000_000)
        c.durationNanoseconds = 400_000_000
        let report = try LoadGenerator(configuration: c).runBlocking()
        server.stop()
        _ = server.wait()
        #expect(report.outcomes.total == 0)
        #expect(report.requests.sent > 500 && report.requests.answered == report.requests.sent)
        #expect(report.http?.success == report.requests.answered)
    }

    static func read(_ client: ServerTestClient, until count: Int) -> String {
        var bytes: [UInt8] = []
        while bytes.count < count, case .data(let d) = client.receive() { bytes += d }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readToEnd(_ client: ServerTestClient) -> String {
        var bytes: [UInt8] = []
        while case .data(let d) = client.receive() { bytes += d }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A scripted peer on 127.0.0.1 (HTTP by default): a thread per connection reads requests (each ends
/// with `requestEnd`; for HTTP, bodiless requests and their blank line) and answers the n-th with `respond(n)`, written in random small pieces; after `closeAfter`
/// answers it closes. Bounded: every wait is a short poll, and `stop()` ends it.
final class HTTPTestPeer: @unchecked Sendable {
    let listener = LoadTestPeer()
    private let stopped = Atomic(false)
    private let respond: @Sendable (Int) -> [UInt8]
    private let closeAfter: Int
    private let requestEnd: [UInt8]

    convenience init(closeAfter: Int = .max, respond: @escaping @Sendable (Int) -> String) {
        self.init(closeAfter: closeAfter, requestEnd: Array("\r\n\r\n".utf8)) { Array(respond($0).utf8) }
    }

    /// Requests end with `requestEnd`; the n-th is answered with `respond(n)`'s bytes.
    init(closeAfter: Int = .max, requestEnd: [UInt8], respond: @escaping @Sendable (Int) -> [UInt8]) {
        self.respond = respond
        self.closeAfter = closeAfter
        self.requestEnd = requestEnd
        let fd = listener.fd
        Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                guard LoadTestPeer.waitReadable(fd, milliseconds: 50) else { continue }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { continue }
                Thread { [self] in serve(client) }.start()
            }
        }.start()
    }

    var address: SocketAddress { listener.address }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        usleep(100_000)
        listener.closeListener()
    }

    private func serve(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var pending: [UInt8] = []
        var answered = 0
        var rng = SplitMix(seed: UInt64(fd))
        var buffer = [UInt8](repeating: 0, count: 8192)
        let end = requestEnd
        outer: while !stopped.load(ordering: .relaxed) {
            guard LoadTestPeer.waitReadable(fd, milliseconds: 50) else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            pending += buffer[0..<n]
            while let r = pending.firstRange(of: end) {
                pending.removeSubrange(0..<r.upperBound)
                let answer = respond(answered)
                var i = 0
                while i < answer.count {
                    let k = min(answer.count - i, 1 + Int(rng.next() % 64))
                    _ = answer[i..<(i + k)].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, k, Int32(MSG_NOSIGNAL)) }
                    i += k
                }
                answered += 1
                if answered >= closeAfter { break outer }
            }
        }
        Glibc.close(fd)
    }
}
