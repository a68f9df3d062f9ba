import Foundation
import Testing
import RingStorm
import RingStormEngine

/// `Docs/embedding.md`'s sample, run as written: the code between the markers is the page's sample
/// (without its imports), and `theSampleIsThePages` fails when the two differ.
@Suite struct EmbeddingSampleTests {
    @Test func theSampleRuns() async throws {
        // BEGIN Docs/embedding.md

        // A server of the ringstorm protocol on a port the kernel picks.
        var server = RingStormServer.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"))
        server.backend = .uring
        server.registerTimeout = .seconds(5)
        server.onEMFILE = .shed
        let running = try RingStormServer(configuration: server)      // returns once it listens

        // A load run against it.
        var load = LoadGenerator.Configuration(target: running.address)
        load.connections = 100
        load.duration = .seconds(2)
        load.pacing = .openLoop(interval: .milliseconds(100))         // or .closedLoop(pipeline: 4)
        let report: LoadReport = try await LoadGenerator(configuration: load).run()

        running.stop()
        let serverReport: ServerReport = running.wait()

        #expect(report.outcomes.request.reset == 0)
        #expect(serverReport.protocolErrors == 0)

        // The verdict `ringstorm load --threshold` exits with: thresholds, and "nothing established" with a hint.
        let verdict = LoadVerdict(report: report, configuration: load,
                                  thresholds: try ["reset==0", "established==connections", "p99<1s"].map { try Threshold(parsing: $0) })
        #expect(verdict.passed, "\(verdict.lines)")
        // END Docs/embedding.md
    }

    @Test func theSampleIsThePages() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let page = try String(contentsOf: root.appendingPathComponent("Docs/embedding.md"), encoding: .utf8)
        let source = try String(contentsOf: here, encoding: .utf8)
        guard let open = page.range(of: "```swift\n"), let close = page.range(of: "```", range: open.upperBound..<page.endIndex),
              let begin = source.range(of: "// BEGIN Docs/embedding.md\n"), let end = source.range(of: "        // END Docs/embedding.md") else {
            Issue.record("no sample found")
            return
        }
        func lines(_ text: Substring) -> [String] {
            text.split(separator: "\n", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("import ") && !$0.hasPrefix("// Package.swift") }
        }
        #expect(lines(page[open.upperBound..<close.lowerBound]) == lines(source[begin.upperBound..<end.lowerBound]))
    }
}
