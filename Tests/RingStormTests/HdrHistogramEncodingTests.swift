import Foundation
import Testing
@testable import RingStorm

/// HdrHistogram's compressed V2 encoding: our round trip, a vector Python's `hdrhistogram` wrote, and
/// Python reading ours (skipped, with a message, where python3 or the package is missing).
@Suite struct HdrHistogramEncodingTests {
    /// `HdrHistogram(1, 60000000, 3)` with 1×1, 173×40, 166×41, 1×1086, 1×4074, 2×59999999, encoded by
    /// Python's hdrhistogram 0.10.8 (`h.encode()`).
    static let pythonVector = "HISTFAAAADB4nJNpmSzMwMAgyAABzFCaEcyZ3M5g/wEqwOR9i+kM03IBptdyTA/vMLIAALTeCSY="

    @Test func roundTripKeepsEveryBucketAndTheExactMaximum() throws {
        var recorder = LatencyRecorder()
        for v in sampleLatencies(count: 20_000, seed: 7) { recorder.record(microseconds: v) }
        let text = recorder.encoded
        #expect(text.hasPrefix("HISTFAAA"))
        let back = try HdrHistogramEncoding.decode(text, exactMaximum: recorder.histogram.maxRecorded)
        #expect(back.count == recorder.count)
        #expect(back.summary == recorder.summary)
        for p in [0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100] {
            #expect(back.value(atPercentile: p) == recorder.value(atPercentile: p), "p\(p)")
        }
        #expect(Array(back.histogram.recordedValues().map(\.count)) == Array(recorder.histogram.recordedValues().map(\.count)))
    }

    @Test func emptyHistogramRoundTrips() throws {
        let back = try HdrHistogramEncoding.decode(LatencyRecorder().encoded)
        #expect(back.isEmpty)
        #expect(back.summary == LatencySummary())
    }

    @Test func readsPythonsEncoding() throws {
        let recorder = try HdrHistogramEncoding.decode(Self.pythonVector)
        #expect(recorder.count == 344)
        #expect(recorder.value(atPercentile: 50) == 40)
        #expect(recorder.value(atPercentile: 99) == 1086)
        #expect(recorder.histogram.countForValue(41) == 166)
        #expect(recorder.histogram.countForValue(4074) == 1)
        #expect(recorder.highestTrackable >= 60_000_000)
    }

    @Test func refusesWhatIsNotAnEncoding() {
        #expect(throws: HdrHistogramEncoding.Invalid(reason: "not base64")) { try HdrHistogramEncoding.decode("%%%") }
        let plainHeader = Data([0x1c, 0x84, 0x93, 0x12, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 32)).base64EncodedString()
        #expect(throws: HdrHistogramEncoding.Invalid(reason: "cookie 0x1c849312, expected 0x1c849313 (V2)")) {
            try HdrHistogramEncoding.decode(plainHeader)
        }
        // A compressed cookie whose stream is not zlib.
        let broken = Data([0x1c, 0x84, 0x93, 0x14, 0, 0, 0, 4, 1, 2, 3, 4]).base64EncodedString()
        #expect(throws: HdrHistogramEncoding.Invalid.self) { try HdrHistogramEncoding.decode(broken) }
    }

    @Test func pythonHdrhistogramReadsOurs() async throws {
        // The child is waited for on a thread of its own: the cooperative pool stays free.
        try await onThread { try Self.pythonReads() }
    }

    static func pythonReads() throws {
        var recorder = LatencyRecorder()
        for v in sampleLatencies(count: 5_000, seed: 11) { recorder.record(microseconds: v) }
        let script = """
            import sys
            from hdrh.histogram import HdrHistogram
            h = HdrHistogram.decode(sys.argv[1])
            print(h.get_total_count(), *[h.get_value_at_percentile(p) for p in (50, 90, 99, 99.9)])
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, recorder.encoded]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = Pipe()
        do { try process.run() } catch {
            print("skipped: python3 not found (Scripts/install-dependencies installs it with the hdrhistogram package)")
            return
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            print("skipped: python3 cannot import hdrh (pip install hdrhistogram; Scripts/install-dependencies does)")
            return
        }
        let fields = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(whereSeparator: \.isWhitespace).compactMap { UInt64($0) }
        // Python's percentiles are the highest equivalent value of the bucket; ours are too, at most the
        // exact maximum, which stays well above these.
        #expect(fields == [UInt64(recorder.count)] + [50, 90, 99, 99.9].map { recorder.value(atPercentile: $0) })
    }
}
