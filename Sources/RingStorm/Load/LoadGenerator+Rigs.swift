import Glibc

/// What a test rig embedding the load generator wants beyond the command line's needs: `Duration`s
/// instead of nanosecond counts, and progress as an `AsyncSequence`.
extension LoadGenerator.Configuration {
    /// `durationNanoseconds` as a `Duration`.
    public var duration: Duration {
        get { .nanoseconds(durationNanoseconds) }
        set { durationNanoseconds = newValue.nanoseconds }
    }

    /// `connectTimeoutNanoseconds` as a `Duration`.
    public var connectTimeout: Duration {
        get { .nanoseconds(connectTimeoutNanoseconds) }
        set { connectTimeoutNanoseconds = newValue.nanoseconds }
    }

    /// `requestTimeoutNanoseconds` as a `Duration`.
    public var requestTimeout: Duration {
        get { .nanoseconds(requestTimeoutNanoseconds) }
        set { requestTimeoutNanoseconds = newValue.nanoseconds }
    }

    /// The reconnect backoff's first and longest wait as `Duration`s.
    public var reconnectBackoff: ClosedRange<Duration> {
        get { .nanoseconds(reconnectMinimumNanoseconds) ... .nanoseconds(max(reconnectMaximumNanoseconds, reconnectMinimumNanoseconds)) }
        set {
            reconnectMinimumNanoseconds = newValue.lowerBound.nanoseconds
            reconnectMaximumNanoseconds = newValue.upperBound.nanoseconds
        }
    }
}

extension LoadGenerator.Pacing {
    /// Open loop: one request every `interval` per connection.
    public static func openLoop(interval: Duration) -> Self { .openLoop(intervalNanoseconds: interval.nanoseconds) }
}

extension LoadGenerator {
    /// The run's progress every `interval` (summed over the workers, as `progress`), ending after the
    /// run has finished with one last snapshot. Start the run first (`start()`, or `run()` in another
    /// task); iterating before it started waits for it.
    public func progressUpdates(every interval: Duration = .seconds(1)) -> AsyncStream<LoadProgress> {
        // Timed on a thread of its own, not the cooperative pool: a busy pool must not skip snapshots.
        let (stream, continuation) = AsyncStream<LoadProgress>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let ended = StopFlag()
        continuation.onTermination = { _ in ended.stop() }
        let step = max(interval.nanoseconds, 1_000_000)
        let body: @Sendable () -> Void = { [self] in
            while !ended.isStopped {
                var request = timespec(tv_sec: Int(step / 1_000_000_000), tv_nsec: Int(step % 1_000_000_000))
                var remaining = timespec()
                while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
                let finished = isFinished
                continuation.yield(progress)
                if finished { break }
            }
            continuation.finish()
        }
        do { try spawnDetachedThread(name: "ringstorm-progress", body) } catch { continuation.finish() }
        return stream
    }
}
