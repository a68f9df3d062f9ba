import Foundation
import Testing
import RingStorm
import RingStormEngine
@testable import ringstorm

/// `ringstorm load --protocol raw|http` as typed: what the flags become, and how bad ones are refused.
@Suite struct ProtocolCommandLineTests {
    func configuration(_ arguments: [String]) throws -> LoadGenerator.Configuration {
        try Load.parse(arguments).makeConfiguration()
    }

    /// The refusal's text: a usage error at parse time, or the LoadError worded with flags at validation.
    func refusal(_ arguments: [String]) -> String? {
        do {
            let c = try configuration(arguments)
            try LoadGenerator(configuration: c).validate()
            return nil
        } catch let error as LoadError {
            return error.commandLineText
        } catch {
            return "\(error)"
        }
    }

    @Test func rawFlagsBecomeBytesAndFramings() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-raw-\(UUID()).bin").path
        defer { unlink(file) }
        FileManager.default.createFile(atPath: file, contents: Data([0, 1, 2, 0xFF]))
        let c = try configuration(["--protocol", "raw", "--first-message", "@" + file, "--first-response-delimiter", "\\r\\n",
                                   "--message", "GET {seq}\\x00", "--response-length-prefix", "2", "--response-length-endian", "little",
                                   "--response-length-offset", "3", "--response-length-includes-header", "--max-response-size", "4k"])
        #expect(c.wireProtocol == .raw)
        #expect(c.raw.firstMessage == [0, 1, 2, 0xFF])
        #expect(c.raw.firstResponse == .delimiter([13, 10]))
        #expect(c.raw.message == Array("GET {seq}".utf8) + [0])
        #expect(c.raw.response == .lengthPrefix(RawLengthPrefix(width: 2, bigEndian: false, offset: 3, includesHeader: true)))
        #expect(c.raw.maxResponseSize == 4096)
    }

    @Test func badRawCombinationsAreWordedWithFlags() {
        #expect(refusal(["--protocol", "raw", "--message", "x"])?.contains("--response-size N, --response-delimiter BYTES or --response-length-prefix WIDTH") == true)
        #expect(refusal(["--protocol", "raw", "--response-size", "7"])?.contains("--protocol raw needs --message") == true)
        #expect(refusal(["--protocol", "raw", "--message", "x", "--response-size", "2", "--response-delimiter", "x"])?
            .contains("exclude each other") == true)
        #expect(refusal(["--protocol", "raw", "--message", "x", "--response-length-prefix", "3"])?.contains("1, 2, 4 or 8") == true)
        #expect(refusal(["--protocol", "raw", "--message", "x\\q", "--response-size", "2"])?.contains("unknown escape \\q") == true)
        #expect(refusal(["--protocol", "raw", "--message", "x", "--response-size", "2", "--first-response-size", "3"])?
            .contains("give --first-message too") == true)
        #expect(refusal(["--protocol", "echo", "--message", "x"])?.contains("are for --protocol raw") == true)
        #expect(refusal(["--protocol", "raw", "--message", "@/nonexistent/file", "--response-size", "2"])?.contains("cannot read the file") == true)
        #expect(refusal(["--protocol", "raw", "--message", "PING\\r\\n", "--response-delimiter", "\\r\\n"]) == nil)
    }

    @Test func httpTargetsAndFlags() throws {
        var c = try configuration(["--protocol", "http", "--target", "http://127.0.0.1:8080/status?x=1", "--header", "X-A: b",
                                   "--method", "POST", "--body", "a\\nb"])
        #expect(c.target == SocketAddress(ipv4Value: 0x7F00_0001, port: 8080))
        #expect(c.http.path == "/status?x=1" && c.http.method == "POST" && c.http.headers == ["X-A: b"] && c.http.body == [97, 10, 98])
        let headers = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-headers-\(UUID())").path
        defer { unlink(headers) }
        FileManager.default.createFile(atPath: headers, contents: Data("Accept: */*\r\nX-B: 2\n\n".utf8))
        c = try configuration(["--protocol", "http", "--header", "X-A: 1", "--header", "@" + headers])
        #expect(c.http.headers == ["X-A: 1", "Accept: */*", "X-B: 2"])
        c = try configuration(["--protocol", "http", "--target", "http://127.0.0.1"])
        #expect(c.target.port == 80 && c.http.path == "/")
        c = try configuration(["--protocol", "http", "--target", "127.0.0.1:81", "--path", "/p"])
        #expect(c.target.port == 81 && c.http.path == "/p")
        #expect(refusal(["--protocol", "http", "--target", "http://example.com/"])?.contains("names are not resolved") == true)
        #expect(refusal(["--target", "http://127.0.0.1:80/"])?.contains("needs --protocol http") == true)
        #expect(refusal(["--protocol", "http", "--target", "https://127.0.0.1/"])?.contains("https is not spoken") == true)
        #expect(refusal(["--protocol", "http", "--first-message", "5"])?.contains("HTTP has no registration") == true)
        #expect(refusal(["--protocol", "http", "--header", "Content-Length: 4"])?.contains("frames the body itself") == true)
        #expect(refusal(["--path", "/x"])?.contains("are for --protocol http") == true)
    }
}
