import Foundation
import Glibc
import Testing
import RingStorm
import RingStormEngine
@testable import ringstorm

extension BadInputTests {
    @Test(.enabled(if: ringstormBinary != nil)) func benchRefusesBadFlagsBeforeAnyRun() async throws {
        try await onThread {
            try refused(["bench", "--rounds", "0"], ["--rounds must be between 1 and"])
            try refused(["bench", "-d", "500ms"], ["--duration must be at least 1s"])
            try refused(["bench", "-c", "0"], ["--connections must be at least 1"])
            try refused(["bench", "-c", "50000"], ["--connections 50,000", "lower --connections"])
            try refused(["bench", "--protocol", "raw"], ["--protocol raw", "echo, ringstorm or http"])
            try refused(["bench", "--target", "localhost:7200"], ["--target", "names are not resolved"])
            try refused(["bench", "--html", "/no-such-folder-ringstorm/b.html"], ["--html /no-such-folder-ringstorm/b.html", "ENOENT"])
            try refused(["bench", "--json", "-", "--html", "-"], ["standard output"])
            try refused(["bench", "--sample-interval", "1ms"], ["--sample-interval must be at least 50ms"])
        }
    }
}

@Suite struct BenchCommandTests {
    /// The whole command, small: two 1 s runs with real server and load processes; the JSON and the
    /// HTML hold what the table says.
    @Test(.enabled(if: ringstormBinary != nil)) func aSmallBenchWritesTableJSONAndHTML() async throws {
        try await onThread {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(getpid())").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let run = try runRingstorm(["bench", "-c", "20", "-d", "1s", "--rounds", "1", "--json", folder + "/b.json",
                                        "--html", folder + "/b.html"], seconds: 60)
            #expect(run.status == 0, "\(run.errors)")
            #expect(run.output.contains("requests/s") && run.output.contains("io_uring/epoll"), "\(run.output)")
            // Piped: plain progress lines, no bar.
            #expect(run.errors.contains("round 1/1 io_uring") && !run.errors.contains("\r"), "\(run.errors)")
            let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/b.json"))
            let result = try JSONDecoder().decode(Bench.Result.self, from: data)
            #expect(result.runs.map(\.backend) == [.uring, .epoll])
            for r in result.runs {
                #expect(r.established == 20 && r.answered > 0 && r.load.syscalls > 0 && (r.server?.syscalls ?? 0) > 0)
                #expect(r.samples.count >= 2)
            }
            let html = try String(contentsOfFile: folder + "/b.html", encoding: .utf8)
            #expect(html.components(separatedBy: "<svg ").count == 5 && !html.contains("<script"))
        }
    }

    /// A stop asked once, in the first run, ends that run early and starts no other, even when asking
    /// consumes the request (as the CLI's `sigtimedwait` consumes SIGINT).
    @Test(.enabled(if: ringstormBinary != nil)) func aStopAskedOnceEndsTheBench() async throws {
        try await onThread {
            var c = Bench.Configuration()
            c.connections = 10
            c.durationNanoseconds = 5_000_000_000
            c.rounds = 1
            c.executable = ringstormBinary!
            let runner = try Bench.Runner(configuration: c)
            let start = monotonicNanoseconds()
            var asked = false
            let result = try runner.run(progress: { _ in }, shouldStop: {
                guard !asked, monotonicNanoseconds() - start > 500_000_000 else { return false }
                asked = true
                return true
            })
            #expect(result.runs.map(\.backend) == [.uring])
            #expect(result.runs.allSatisfy { $0.seconds < 4 }, "\(result.runs.map(\.seconds))")
        }
    }
}
