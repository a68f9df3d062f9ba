import Foundation
import Glibc
import RingStorm
import RingStormEngine
import Testing

/// Issue 8, item 5: the small version of `Scripts/netns-shards`. Four namespaces on a bridge (a fifth
/// namespace holds it): a server and three load "hosts", each its own address; three shards started
/// together with `--start-at`, merged by `ringstorm merge`'s code, against closed-form totals.
/// Skipped, with the reason, where namespaces cannot be made.
@Suite(.serialized, .enabled(if: namespacesUnavailable == nil, "network namespaces: \(namespacesUnavailable ?? "")"),
       .timeLimit(.minutes(1)))
struct NetnsShardsTests {
    static let serverAddress = "10.78.0.1"

    final class Hosts {
        let tag = "\(getpid() % 10000)\(UInt32.random(in: 0..<100))"
        var bridge: String { "rsnt-br-\(tag)" }
        var server: String { "rsnt-s-\(tag)" }
        var loads: [String] { (0..<3).map { "rsnt-l\($0)-\(tag)" } }

        init() throws {
            var commands: [[String]] = [["ip", "netns", "add", bridge], ["ip", "-n", bridge, "link", "add", "br0", "type", "bridge"],
                                        ["ip", "-n", bridge, "link", "set", "br0", "up"]]
            for (k, (ns, address)) in zip([server] + loads, [NetnsShardsTests.serverAddress] + (0..<3).map { "10.78.0.\(11 + $0)" }).enumerated() {
                commands += [["ip", "netns", "add", ns],
                             ["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", "p\(k)", "netns", bridge],
                             ["ip", "-n", bridge, "link", "set", "p\(k)", "master", "br0"], ["ip", "-n", bridge, "link", "set", "p\(k)", "up"],
                             ["ip", "-n", ns, "link", "set", "lo", "up"], ["ip", "-n", ns, "addr", "add", "\(address)/24", "dev", "eth0"],
                             ["ip", "-n", ns, "link", "set", "eth0", "up"]]
            }
            for command in commands {
                let r = runTool(command)
                if r.status != 0 { remove(); throw ServerTestError("\(command.joined(separator: " ")): \(r.errors)") }
            }
        }

        /// A namespace takes its veth ends, and the bridge, with it.
        func remove() {
            for ns in [bridge, server] + loads { runTool(["ip", "netns", "del", ns]) }
        }
    }

    /// 3 shards of 6 connections, open loop every 500 ms for 1.2 s. Each connection sends on its own phase of
    /// the run's grid (`--interval` spreads client g of N to g × 500 ms / 6), so it sends 2 or 3 times in the
    /// run, depending on where the grid falls against its connect: 12 to 18 in all, every one answered,
    /// and the merge must add the shards' counts exactly.
    @Test func threeShardsOnABridgeMergeToTheExpectedTotals() async throws {
        try await onThread {
            let hosts = try Hosts()
            defer { hosts.remove() }
            let server = try RingstormChild(["ip", "netns", "exec", hosts.server, ringstormBinary!, "serve", "--listen", "\(Self.serverAddress):7200",
                                             "--backend", "epoll", "-d", "20s", "--log-level", "warning"], executable: "/usr/bin/env")
            defer { server.terminate() }
            let deadline = monotonicNanoseconds() + Int64(10e9 * sanitizerScale)
            while runTool(["ip", "netns", "exec", hosts.server, "sh", "-c", "ss -Hltn 'sport = :7200' | grep -q ."]).status != 0 {
                guard monotonicNanoseconds() < deadline else { throw ServerTestError("the server did not listen: \(server.errors)") }
                usleep(50_000)
            }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstorm-netns-shards-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let startAt = String(format: "%.3f", Double(wallClockNanoseconds()) / 1e9 + 0.5 * sanitizerScale)
            let paths = (0..<3).map { directory.appendingPathComponent("shard-\($0).json").path }
            let shards = try (0..<3).map { i in
                try RingstormChild(["ip", "netns", "exec", hosts.loads[i], ringstormBinary!, "load", "--target", "\(Self.serverAddress):7200",
                                    "--backend", "epoll", "-c", "6", "--connect-rate", "0", "-d", "1200ms", "--interval", "500ms",
                                    "--shard", "\(i)/3", "--start-at", startAt, "--quiet", "--log-level", "warning", "--json", paths[i]],
                                   executable: "/usr/bin/env")
            }
            for (i, shard) in shards.enumerated() {
                let (status, _, errors) = shard.waitForExit(seconds: 20 * sanitizerScale)
                #expect(status == 0, "shard \(i): \(errors)")
            }
            // The command's own path: read each file, then merge.
            guard case .load(let merged) = try ReportMerge.merge(paths: paths) else { throw ServerTestError("not load reports") }
            let shardReports = try paths.map { path -> LoadReport in
                guard case .load(let r) = try ReportMerge.read(path: path) else { throw ServerTestError("\(path): not a load report") }
                return r
            }
            #expect(merged.connections.established == 6)
            #expect((12...18).contains(merged.requests.answered), "answered \(merged.requests.answered)")
            #expect(merged.requests.answered == shardReports.map(\.requests.answered).reduce(0, +))
            #expect(merged.requests.sent == merged.requests.answered)
            #expect(Phase.allCases.allSatisfy { merged.outcomes[$0].nonZero.isEmpty })
            #expect(merged.latency.request.count == merged.requests.answered)
            #expect(merged.mergedFrom?.compactMap(\.shard) == ["0/3", "1/3", "2/3"])
            // Each shard from its own host: 2 connections each, the shards' shares.
            #expect(shardReports.map(\.connections.established) == [2, 2, 2])
        }
    }
}
