/// Latencies counted on the load worker's per-request path in flat memory, with the HDR histogram's own
/// bucketing (1 µs to `highestTrackable`, 3 significant digits), and folded into a `LatencyRecorder`
/// when a snapshot is taken (about once a second).
///
/// Why not record into the `LatencyRecorder` directly: the histogram is a struct holding an array, inside
/// the worker's report, inside the worker object; each record then pays a dynamic exclusivity check and
/// an array uniqueness check, and the open loop records three values per request (send lag, response,
/// request). Here a record is an index computation and an increment through a pointer the tally owns:
/// no access check, no reference count. Folding adds whole buckets, so the recorder ends up exactly as if
/// every value had been recorded into it (count, percentiles, exact minimum and maximum, clamped values).
final class LatencyTally {
    let highestTrackable: UInt64
    /// Bucket counts, then four slots: values recorded, clamped, exact minimum (non-zero), maximum.
    let counts: UnsafeMutablePointer<UInt64>
    let length: Int

    init(highestTrackable: UInt64 = LatencyRecorder.defaultHighestTrackable) {
        self.highestTrackable = max(highestTrackable, 2)
        length = HdrHistogramEncoding.countsIndex(of: self.highestTrackable) + 1
        counts = .allocate(capacity: length + 4)
        counts.initialize(repeating: 0, count: length + 4)
        counts[length + 2] = .max
    }

    deinit { counts.deallocate() }

    /// Records a latency in nanoseconds, rounded up to whole microseconds; a negative value (a clock
    /// step) counts as 0; above `highestTrackable` counts as that and as clamped. Same as
    /// `LatencyRecorder.record(nanoseconds:)`.
    @inline(__always)
    func record(nanoseconds: Int64) {
        var value = nanoseconds <= 0 ? 0 : UInt64((nanoseconds + 999) / 1000)
        if value > highestTrackable {
            value = highestTrackable
            counts[length + 1] &+= 1
        }
        counts[HdrHistogramEncoding.countsIndex(of: value)] &+= 1
        counts[length] &+= 1
        if value != 0 && value < counts[length + 2] { counts[length + 2] = value }
        if value > counts[length + 3] { counts[length + 3] = value }
    }

    var isEmpty: Bool { counts[length] == 0 }

    /// Adds what was counted since the last fold to `recorder`, and starts counting afresh.
    func fold(into recorder: inout LatencyRecorder) {
        fold { recorder.record(microseconds: $0, count: $1) } clamped: { recorder.addClamped($0) }
    }

    /// Adds what was counted since the last fold to both recorders (the report's and the current
    /// interval's), and starts counting afresh.
    func fold(into recorder: inout LatencyRecorder, and interval: inout LatencyRecorder) {
        fold { value, count in
            recorder.record(microseconds: value, count: count)
            interval.record(microseconds: value, count: count)
        } clamped: { n in
            recorder.addClamped(n)
            interval.addClamped(n)
        }
    }

    /// Hands each bucket counted since the last fold to `record` (value, count), then the exact maximum
    /// with a count of 0 and the clamped count to `clamped`, and starts counting afresh. Replaying
    /// that into a `LatencyRecorder` adds exactly these values. Walks the buckets up to the maximum's.
    func fold(_ record: (UInt64, UInt64) -> Void, clamped: (UInt64) -> Void) {
        guard !isEmpty else { return }
        let minimum = counts[length + 2], maximum = counts[length + 3]
        let minimumIndex = minimum == .max ? -1 : HdrHistogramEncoding.countsIndex(of: minimum)
        for i in 0...HdrHistogramEncoding.countsIndex(of: maximum) where counts[i] != 0 {
            // The bucket of the exact minimum is recorded at it, so the recorder's minimum is exact;
            // the others at their lowest value, which never overshoots the maximum, set exactly after.
            record(i == minimumIndex ? minimum : HdrHistogramEncoding.value(atIndex: i), counts[i])
        }
        record(maximum, 0)
        clamped(counts[length + 1])
        counts.update(repeating: 0, count: length + 4)
        counts[length + 2] = .max
    }
}

/// The per-request latencies (`LoadWorkerReport.Histograms`' `request`, `sendLag`, `response`), tallied
/// flat and folded into the report's recorders and the current interval's (`LoadIntervalRecorder`)
/// before either is read: at each snapshot and each interval's close.
final class LatencyTallies {
    let request = LatencyTally()
    let sendLag = LatencyTally()
    let response = LatencyTally()

    func fold(into latency: inout LoadWorkerReport.Histograms, interval: inout LoadIntervalRecorder) {
        request.fold(into: &latency.request, and: &interval.latency)
        sendLag.fold(into: &latency.sendLag, and: &interval.sendLag)
        response.fold(into: &latency.response)
    }
}
