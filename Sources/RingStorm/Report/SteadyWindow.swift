/// Requests answered over the steady window: from the moment all of a worker's connections were open
/// at once (the connect ramp over) to the run's deadline. Beside the whole-run rate (answered /
/// `duration_s`, the ramp and the drain included) it is the rate a tool that times only its steady
/// state would report; with 10,000 connections the ramp alone can take a few hundred milliseconds.
///
/// Each worker times its own window; workers run side by side, so a merge sums their answers and
/// rates and keeps the shortest window. Absent when some worker never had all its connections open
/// at once (connects that failed, a ramp longer than the run).
public struct SteadyWindow: Codable, Sendable, Equatable {
    /// Requests answered inside the window.
    public var answered: Int
    /// The window's length, seconds (the shortest of the workers').
    public var seconds: Double
    /// Answered per second over the window (summed over workers).
    public var requestsPerSecond: Double

    public init(answered: Int, seconds: Double) {
        self.answered = answered
        self.seconds = seconds
        requestsPerSecond = seconds > 0 ? Double(answered) / seconds : 0
    }

    enum CodingKeys: String, CodingKey {
        case answered, seconds
        case requestsPerSecond = "requests_per_s"
    }

    /// Two workers' windows side by side; nil when either has none.
    static func merged(_ a: Self?, _ b: Self?) -> Self? {
        guard var sum = a, let b else { return nil }
        sum.answered += b.answered
        sum.seconds = min(sum.seconds, b.seconds)
        sum.requestsPerSecond += b.requestsPerSecond
        return sum
    }
}
