import Histogram

/// Latencies in microseconds, in an HDR histogram: 1 µs to 60 s (by default) at 3 significant digits.
///
/// Recording is an array increment (the histogram is allocated once, up front). Recorders merge exactly:
/// `+` adds the histograms bucket by bucket, so percentiles of merged recorders are the percentiles of
/// all the values together, never an average of percentiles. A value above the highest trackable one is
/// recorded as that highest value and counted in `clampedCount`.
public struct LatencyRecorder: Sendable, Equatable {
    public private(set) var histogram: Histogram<UInt64>
    /// Values recorded above `highestTrackable`, recorded as `highestTrackable`.
    public private(set) var clampedCount: UInt64 = 0

    /// The default highest trackable value: 60 s in microseconds.
    public static let defaultHighestTrackable: UInt64 = 60_000_000

    public init(highestTrackable: UInt64 = LatencyRecorder.defaultHighestTrackable) {
        histogram = Histogram(lowestDiscernibleValue: 1, highestTrackableValue: max(highestTrackable, 2),
                              numberOfSignificantValueDigits: .three)
        // Recording clamps, so only a merge with a recorder of a larger range can grow the histogram.
        histogram.autoResize = true
    }

    /// The highest value recorded as itself.
    public var highestTrackable: UInt64 { histogram.highestTrackableValue }

    /// Values recorded.
    public var count: Int { Int(histogram.totalCount) }

    public var isEmpty: Bool { histogram.totalCount == 0 }

    /// Records a latency in microseconds.
    @inline(__always)
    public mutating func record(microseconds: UInt64) {
        var value = microseconds
        if value > histogram.highestTrackableValue {
            value = histogram.highestTrackableValue
            clampedCount &+= 1
        }
        histogram.record(value)
    }

    /// Records `count` latencies of `microseconds` each (at most `highestTrackable`): a whole bucket of
    /// a `LatencyTally`. A count of 0 moves only the minimum and maximum.
    package mutating func record(microseconds: UInt64, count: UInt64) {
        histogram.record(min(microseconds, histogram.highestTrackableValue), count: count)
    }

    /// Counts `count` values as recorded above the range (they were recorded as `highestTrackable`).
    package mutating func addClamped(_ count: UInt64) { clampedCount &+= count }

    /// Records a latency in nanoseconds, rounded up to whole microseconds (so anything above 0 ns counts
    /// as at least 1 µs); a negative value (a clock step) counts as 0.
    @inline(__always)
    public mutating func record(nanoseconds: Int64) {
        record(microseconds: nanoseconds <= 0 ? 0 : UInt64((nanoseconds + 999) / 1000))
    }

    /// The latency between two readings of a nanosecond clock.
    @inline(__always)
    public mutating func record(from start: UInt64, to end: UInt64) {
        record(nanoseconds: end >= start ? Int64(clamping: end - start) : 0)
    }

    /// Values recorded at or below `microseconds`, to within the histogram's resolution (values within
    /// 0.1% above it may count too): a Prometheus histogram's cumulative bucket.
    public func count(atOrBelow microseconds: UInt64) -> Int {
        histogram.totalCount == 0 ? 0 : Int(histogram.count(within: 0...microseconds))
    }

    /// The sum of the values recorded, in microseconds, each taken at the middle of its bucket (so to
    /// within 0.1%): a Prometheus histogram's `_sum`.
    public var sumMicroseconds: Double { histogram.mean * Double(histogram.totalCount) }

    /// Adds `other`'s values to this recorder's.
    public mutating func merge(_ other: LatencyRecorder) {
        histogram.add(other.histogram)
        clampedCount &+= other.clampedCount
    }

    public static func + (lhs: LatencyRecorder, rhs: LatencyRecorder) -> LatencyRecorder {
        var sum = lhs
        sum.merge(rhs)
        return sum
    }

    public static func += (lhs: inout LatencyRecorder, rhs: LatencyRecorder) { lhs.merge(rhs) }

    /// Forgets every value, keeping the histogram's memory.
    public mutating func reset() {
        histogram.reset()
        clampedCount = 0
    }

    /// The value at `percentile` (0...100), in microseconds: the highest value equivalent to it at the
    /// histogram's precision, at most the largest value recorded. 0 when empty.
    public func value(atPercentile percentile: Double) -> UInt64 {
        isEmpty ? 0 : histogram.valueAtPercentile(percentile)
    }

    /// count, p50, p90, p99, p99.9 and max.
    public var summary: LatencySummary {
        guard !isEmpty else { return LatencySummary() }
        return LatencySummary(
            count: count,
            p50: histogram.valueAtPercentile(50),
            p90: histogram.valueAtPercentile(90),
            p99: histogram.valueAtPercentile(99),
            p999: histogram.valueAtPercentile(99.9),
            max: histogram.maxRecorded,
            mean: LatencySummary.rounded(histogram.mean),
            standardDeviation: LatencySummary.rounded(histogram.stdDeviation))
    }

    // MARK: The whole distribution

    /// The percentile spectrum in HdrHistogram's `outputPercentileDistribution` text, the `.hgrm` format
    /// plotters read (and what wrk2 `--latency` prints): values in milliseconds, `ticksPerHalfDistance`
    /// rows per halving of the distance to 100%, then the mean, standard deviation, maximum and count.
    public func percentileDistribution(ticksPerHalfDistance: Int = 5) -> String {
        var text = ""
        histogram.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1000,
                                               percentileTicksPerHalfDistance: ticksPerHalfDistance)
        return text
    }

    /// Records `count` values of `value` without counting clamps: a decoder rebuilding a histogram.
    package mutating func restore(_ value: UInt64, count: UInt64) {
        histogram.record(value, count: count)
    }

    /// The histogram in HdrHistogram's compressed V2 encoding, base64 (`HdrHistogramEncoding`).
    public var encoded: String { HdrHistogramEncoding.encode(self) }

    /// count, p50, p90, p99, p99.9, max and the whole histogram, encoded: what a report publishes.
    public var publishedSummary: LatencySummary {
        var s = summary
        s.histogram = encoded
        return s
    }

    // MARK: Serialized form

    /// The recorder as data that restores it exactly (see `HistogramSnapshot`).
    public var snapshot: HistogramSnapshot {
        var buckets: [[UInt64]] = []
        let minimum = histogram.min
        for item in histogram.recordedValues() {
            // The lowest value of each bucket stands for it, except that the lowest bucket is given by the
            // exact minimum: then replaying the pairs restores the exact minimum and never overshoots the
            // maximum, which `init(snapshot:)` then sets exactly.
            let value = buckets.isEmpty ? minimum : histogram.lowestEquivalentForValue(item.value)
            buckets.append([value, UInt64(item.count)])
        }
        return HistogramSnapshot(
            highestTrackable: histogram.highestTrackableValue,
            significantDigits: Int(histogram.numberOfSignificantValueDigits.rawValue),
            min: isEmpty ? 0 : minimum,
            max: isEmpty ? 0 : histogram.maxRecorded,
            clamped: clampedCount,
            buckets: buckets)
    }

    /// Restores a recorder from its snapshot. Values above this recorder's range grow it (merging never
    /// drops counts); bucket pairs that are not [value, count] are an error.
    public init(snapshot: HistogramSnapshot) throws(HistogramSnapshot.Invalid) {
        guard snapshot.significantDigits == 3 else {
            throw HistogramSnapshot.Invalid(reason: "significant digits \(snapshot.significantDigits), expected 3")
        }
        guard snapshot.highestTrackable >= 2 && snapshot.highestTrackable <= UInt64.max / 4 else {
            throw HistogramSnapshot.Invalid(reason: "highest trackable value \(snapshot.highestTrackable) out of range")
        }
        self.init(highestTrackable: snapshot.highestTrackable)
        for pair in snapshot.buckets {
            guard pair.count == 2 else {
                throw HistogramSnapshot.Invalid(reason: "bucket \(pair) is not a [value, count] pair")
            }
            guard pair[0] <= histogram.highestTrackableValue else {
                throw HistogramSnapshot.Invalid(reason: "bucket value \(pair[0]) above the highest trackable \(highestTrackable)")
            }
            histogram.record(pair[0], count: pair[1])
        }
        // A count of 0 moves only the maximum: back to the exact one recorded.
        if snapshot.max > 0 && snapshot.max <= histogram.highestTrackableValue { histogram.record(snapshot.max, count: 0) }
        clampedCount = snapshot.clamped
    }
}

/// A histogram as data: its non-zero buckets as `[value, count]` pairs, plus its exact minimum and
/// maximum. This is the form worker processes send their latencies to the parent in, so the parent can
/// add histograms exactly. `value` is the highest value of the bucket, which records into the same bucket.
public struct HistogramSnapshot: Codable, Sendable, Equatable {
    public var highestTrackable: UInt64
    public var significantDigits: Int
    /// Smallest non-zero value recorded (0 when none).
    public var min: UInt64
    /// Largest value recorded.
    public var max: UInt64
    /// Values that were above the range and recorded as `highestTrackable`.
    public var clamped: UInt64
    /// `[value, count]` for every non-zero bucket, in increasing value order.
    public var buckets: [[UInt64]]

    enum CodingKeys: String, CodingKey {
        case highestTrackable = "highest_trackable"
        case significantDigits = "significant_digits"
        case min, max, clamped, buckets
    }

    /// A snapshot that cannot be a histogram of this program.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var reason: String
        public var description: String { "invalid histogram snapshot: \(reason)" }
    }
}

extension LatencyRecorder: Codable {
    public init(from decoder: any Decoder) throws {
        try self.init(snapshot: HistogramSnapshot(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try snapshot.encode(to: encoder)
    }
}

/// The latency figures a report shows, in microseconds.
public struct LatencySummary: Codable, Sendable, Equatable {
    public var count: Int = 0
    public var p50: UInt64 = 0
    public var p90: UInt64 = 0
    public var p99: UInt64 = 0
    public var p999: UInt64 = 0
    public var max: UInt64 = 0
    /// The mean and standard deviation, µs to 0.1 (from the histogram: each value at the middle of its
    /// bucket, so to within 0.1%). Next to the percentiles they show a skew: a mean far above p50 is a tail.
    public var mean: Double = 0
    public var standardDeviation: Double = 0
    /// The whole histogram in HdrHistogram's compressed V2 encoding, base64 ("HISTFAAA..."): what
    /// `ringstorm merge` adds exactly and other HdrHistogram libraries read. Absent in reports written
    /// before it existed (those cannot be merged).
    public var histogram: String?

    public init(count: Int = 0, p50: UInt64 = 0, p90: UInt64 = 0, p99: UInt64 = 0, p999: UInt64 = 0, max: UInt64 = 0,
                mean: Double = 0, standardDeviation: Double = 0) {
        self.count = count
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    enum CodingKeys: String, CodingKey {
        case count, p50, p90, p99, p999, max, mean, histogram
        case standardDeviation = "stddev"
    }

    /// The histogram this summary publishes, with its exact maximum; nil when it carries none.
    package func recorder() throws(HdrHistogramEncoding.Invalid) -> LatencyRecorder? {
        guard let histogram else { return nil }
        return try HdrHistogramEncoding.decode(histogram, exactMaximum: max)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.decode(Int.self, forKey: .count)
        p50 = try c.decode(UInt64.self, forKey: .p50)
        p90 = try c.decode(UInt64.self, forKey: .p90)
        p99 = try c.decode(UInt64.self, forKey: .p99)
        p999 = try c.decode(UInt64.self, forKey: .p999)
        max = try c.decode(UInt64.self, forKey: .max)
        // Reports written before these fields existed have none.
        mean = try c.decodeIfPresent(Double.self, forKey: .mean) ?? 0
        standardDeviation = try c.decodeIfPresent(Double.self, forKey: .standardDeviation) ?? 0
        histogram = try c.decodeIfPresent(String.self, forKey: .histogram)
    }

    /// To 0.1 µs, so the JSON shows no float noise.
    static func rounded(_ value: Double) -> Double { value.isFinite ? (value * 10).rounded() / 10 : 0 }
}
