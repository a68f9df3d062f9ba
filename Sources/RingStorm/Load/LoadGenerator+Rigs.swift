import Glibc

/// The load configuration's times as `Duration`s, its public form (the nanosecond counts behind them are
/// `package`: what the worker loops and the worker-process JSON use), and progress as an `AsyncSequence`.
extension LoadGenerator.Configuration {
    /// How long the run lasts; then the generator closes its own connections.
    public var duration: Duration {
        get { .nanoseconds(durationNanoseconds) }
        set { durationNanoseconds = newValue.nanoseconds }
    }

    /// The engine abandons a connect after this (outcome `connect_timeout`); zero: the kernel's own.
    public var connectTimeout: Duration {
        get { .nanoseconds(connectTimeoutNanoseconds) }
        set { connectTimeoutNanoseconds = newValue.nanoseconds }
    }

    /// A request (or REGISTER) unanswered this long ends the connection with `response_timeout`.
    public var requestTimeout: Duration {
        get { .nanoseconds(requestTimeoutNanoseconds) }
        set { requestTimeoutNanoseconds = newValue.nanoseconds }
    }

    /// After the deadline, how long to wait for answers due and for the closes.
    public var drain: Duration {
        get { .nanoseconds(drainNanoseconds) }
        set { drainNanoseconds = newValue.nanoseconds }
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
