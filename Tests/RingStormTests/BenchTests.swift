import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import RingStormEngine
import Testing
@testable import RingStorm

/// The elements of an SVG document, parsed as XML: fails if it is not well-formed.
final class SVGElements: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var texts: [String] = []
    private var current = ""

    static func parse(_ svg: String) throws -> SVGElements {
        let collector = SVGElements()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        #expect(parser.parse(), "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
        return collector
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append((name, attributes))
        current = ""
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" || name == "title" { texts.append(current) }
        current = ""
    }

    /// A polyline's points as (x, y) pixels.
    func points(ofSeries name: String) -> [(Double, Double)] {
        guard let line = elements.first(where: { $0.name == "polyline" && $0.attributes["data-series"] == name }),
              let text = line.attributes["points"] else { return [] }
        return text.split(separator: " ").map { pair in
            let xy = pair.split(separator: ",").map { Double($0)! }
            return (xy[0], xy[1])
        }
    }
}

/// A bench result with two rounds per backend, latencies from a fixed spread, samples every 0.5 s.
func sampleBenchResult() -> Bench.Result {
    var configuration = Bench.Configuration()
    configuration.connections = 100
    var runs: [Bench.Run] = []
    for round in 1...2 {
        for (i, backend) in [Backend.uring, .epoll].enumerated() {
            var latency = LatencyRecorder()
            for v in sampleLatencies(count: 20_000, seed: UInt64(round * 10 + i)) { latency.record(microseconds: v * UInt64(1 + i)) }
            let rate = 50_000.0 + Double(round * 1000) - Double(i) * 10_000
            let samples = (1...10).map { k in
                Bench.Sample(seconds: Double(k) / 2, answered: Int(rate * Double(k) / 2), loadSyscalls: k * (i == 0 ? 100 : 50_000),
                             serverSyscalls: k * (i == 0 ? 80 : 48_000))
            }
            runs.append(Bench.Run(backend: backend, round: round, connections: 100, established: 100, seconds: 5,
                                  answered: Int(rate * 5), latency: latency,
                                  load: .init(cpuSeconds: 1.0 + Double(i), syscalls: 1_000 * (i == 0 ? 1 : 500), baselineBytes: 1_000_000, peakBytes: 1_500_000),
                                  server: .init(cpuSeconds: 0.8 + Double(i) / 2, syscalls: 800, baselineBytes: 2_000_000, peakBytes: 2_100_000),
                                  samples: samples, failures: [:]))
        }
    }
    return Bench.Result(configuration: configuration, machine: .init(kernel: "Linux 6.12", cpuModel: "test CPU", cores: 2, loadAverage: 0.5),
                        placement: CPUPlacement(allowed: [0, 1], loadOnly: false), runs: runs)
}

@Suite struct BenchTests {
    @Test func medianSpreadAndRatio() throws {
        let result = sampleBenchResult()
        let uring = try #require(result.spread(.requestsPerSecond, .uring))
        #expect(uring.min == 51_000 && uring.max == 52_000 && uring.median == 51_500)
        let epoll = try #require(result.spread(.requestsPerSecond, .epoll))
        #expect(epoll.median == 41_500)
        #expect(abs(try #require(result.ratio(.requestsPerSecond)) - 51_500.0 / 41_500) < 1e-9)
        // Memory per connection: (peak - ready) / established.
        #expect(result.spread(.loadMemory, .uring)?.median == 5_000)
        #expect(Bench.Spread([3, 1, 2, 10])?.median == 2.5)
        #expect(Bench.Spread([]) == nil)
        let text = result.text
        for label in Bench.Metric.allCases.map(\.label) { #expect(text.contains(label)) }
        #expect(text.contains("io_uring/epoll"))
    }

    @Test func jsonHasTheTableForMachines() throws {
        let result = sampleBenchResult()
        let object = try jsonObject(try result.json())
        #expect(keys(object) == ["configuration", "machine", "placement", "runs", "summary"])
        let summary = try #require(object["summary"] as? [String: Any])
        #expect(Set(summary.keys) == Set(Bench.Metric.allCases.map(\.rawValue)))
        let rate = try #require(summary["requests_per_s"] as? [String: Any])
        #expect((rate["median"] as? [String: Double])?["uring"] == 51_500)
        let runs = try #require(object["runs"] as? [[String: Any]])
        #expect((runs[0]["figures"] as? [String: Double])?["requests_per_s"] == 51_000)
        let decoded = try JSONDecoder().decode(Bench.Result.self, from: try result.json())
        #expect(decoded.runs == result.runs)
        #expect(decoded.configuration == result.configuration)
    }

    @Test func latencyChartIsWellFormedWithMonotonicCurves() throws {
        let result = sampleBenchResult()
        let svg = try SVGElements.parse(BenchCharts.latency(result))
        #expect(svg.elements.first?.name == "svg")
        #expect(svg.elements.contains { $0.attributes["class"] == "x-axis" })
        #expect(svg.elements.contains { $0.attributes["class"] == "y-axis" })
        #expect(svg.texts.contains("percentile") && svg.texts.contains("request latency (µs)"))
        #expect(svg.texts.contains("99.9%") && svg.texts.contains("io_uring") && svg.texts.contains("epoll"))
        for name in ["io_uring", "epoll"] {
            let points = svg.points(ofSeries: name)
            #expect(points.count > 20)
            // Percentiles rise to the right, latencies never fall (SVG y grows downwards).
            #expect(zip(points, points.dropFirst()).allSatisfy { $0.0 < $1.0 && $0.1 >= $1.1 })
        }
        // epoll's latencies are twice io_uring's: in the tail its curve sits clearly above (smaller y).
        let u = svg.points(ofSeries: "io_uring"), e = svg.points(ofSeries: "epoll")
        #expect(e.last!.1 + 20 < u.last!.1)
    }

    @Test func timeSeriesAndBarsArePlacedByValue() throws {
        let result = sampleBenchResult()
        let throughput = try SVGElements.parse(BenchCharts.throughput(result))
        #expect(throughput.texts.contains("requests/s"))
        let series = throughput.elements.filter { $0.name == "polyline" }
        #expect(series.count == 4)
        let syscalls = try SVGElements.parse(BenchCharts.syscalls(result))
        // A log axis: ticks at powers of ten, labelled.
        #expect(syscalls.texts.contains("100") && syscalls.texts.contains("100,000"))
        let uringServer = syscalls.points(ofSeries: "io_uring server"), epollServer = syscalls.points(ofSeries: "epoll server")
        #expect(uringServer.allSatisfy { u in epollServer.allSatisfy { $0.1 < u.1 } })
        let bars = try SVGElements.parse(BenchCharts.cpu(result))
        let rects = bars.elements.filter { $0.name == "rect" && $0.attributes["data-series"] != nil }
        #expect(rects.count == 4)
        // Taller bar for the larger value.
        func height(_ series: String, _ index: Int) -> Double {
            Double(rects.filter { $0.attributes["data-series"] == series }[index].attributes["height"]!)!
        }
        #expect(height("epoll", 0) > height("io_uring", 0) && height("epoll", 1) > height("io_uring", 1))
    }

    @Test func htmlIsSelfContained() throws {
        let html = BenchHTML.render(sampleBenchResult())
        #expect(html.components(separatedBy: "<svg ").count == 5)
        // No script, nothing fetched: the only URL is the SVG namespace.
        #expect(!html.contains("https://") && !html.contains("src="))
        #expect(!html.contains("<script"))
        #expect(html.contains("test CPU") && html.contains("Linux 6.12"))
        #expect(SVGChart.escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;")
    }

    @Test func procParsing() {
        // A command name with spaces and a parenthesis.
        let stat = "1234 (ring (storm) x) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0 1000 2000000 300"
        #expect(ProcessSample.cpuTicks(statLine: stat) == 325)
        #expect(ProcessSample.anonymousBytes(status: "Name:\tx\nVmRSS:\t 9000 kB\nRssAnon:\t    2048 kB\n") == 2048 * 1024)
        #expect(ProcessSample.anonymousBytes(status: "Name:\tx\n") == nil)
        #expect(ProcessSample.read(pid: getpid()) != nil)
        #expect(CPUPlacement(allowed: [0, 1], loadOnly: false) == CPUPlacement(server: 0, load: 1))
        #expect(CPUPlacement(allowed: [3], loadOnly: false).load == nil)
        #expect(CPUPlacement(allowed: [2, 5], loadOnly: true).load == 2)
    }

    @Test func badSettingsAreRefusedUpFront() {
        var c = Bench.Configuration()
        c.rounds = 0
        #expect(throws: BenchError.rounds(0, maximum: Bench.Configuration.maximumRounds)) { try c.validate() }
        c = Bench.Configuration()
        c.durationNanoseconds = 500_000_000
        #expect(throws: BenchError.self) { try c.validate() }
        c = Bench.Configuration()
        c.wireProtocol = .raw
        #expect(throws: BenchError.protocolNotServed(.raw)) { try c.validate() }
    }
}
