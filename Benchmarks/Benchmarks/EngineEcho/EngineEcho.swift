// Echo round trips between two RingStorm engines in one process, on loopback: an echo server engine on one
// thread, a client engine on another, N connections with one 64-byte message in flight on each, closed
// loop. One iteration is 10,000 round trips. Both backends, 100 and 1,000 connections, with the engines'
// default configuration (what `ringstorm serve` runs), plus io_uring with batch waiting off
// (`--batch-wait 0`): in a closed loop inside one process each side's 50 µs batch wait adds to every round
// trip's latency, so that variant separates the cost of the wait from the cost of the work.
//
// Metrics: throughput (iterations/s), wall clock per iteration, mallocs per iteration (all threads), and
// these custom ones:
//   round trips/s                            10,000 / wall clock
//   CPU ns per round trip                    process CPU time (all threads, CLOCK_PROCESS_CPUTIME_ID) / 10,000
//   server syscalls per 1k round trips       the server engine's own syscall count (Docs/architecture.md)
//   client syscalls per 1k round trips       the client engine's
// Why custom ones instead of package-benchmark's `cpuTotal` and `syscalls`: on Linux `cpuTotal` comes from
// /proc/self/stat in 10 ms ticks (±10% of a 100 ms iteration), and reading /proc allocates inside the
// measured region (16 mallocs per iteration that would show as the engines'); `syscalls` is not produced on
// Linux at all. The engines count every syscall they make; their counts are read before and after each
// iteration on the engines' own threads, outside the measured region. `--metric cpuTotal` still works.

import Benchmark
import Glibc
import RingStormEngine

let roundTripsPerIteration = 10_000

enum EchoMetrics {
    static let cpuPerRoundTrip = BenchmarkMetric.custom("CPU ns per round trip", polarity: .prefersSmaller, useScalingFactor: false)
    static let roundTripsPerSecond = BenchmarkMetric.custom("round trips/s", polarity: .prefersLarger, useScalingFactor: false)
    static let serverSyscalls = BenchmarkMetric.custom("server syscalls per 1k round trips", polarity: .prefersSmaller, useScalingFactor: false)
    static let clientSyscalls = BenchmarkMetric.custom("client syscalls per 1k round trips", polarity: .prefersSmaller, useScalingFactor: false)
}

/// The rig of the benchmark that is running, set up in its setup hook and stopped in its teardown.
final class RigHolder: @unchecked Sendable {
    // @unchecked: package-benchmark runs one benchmark's setup, iterations and teardown one after another.
    var rig: EchoRig?
}

let benchmarks: @Sendable () -> Void = {
    let variants: [(label: String, backend: Backend, batchWait: UInt32?)] = [
        ("uring", .uring, nil), ("epoll", .epoll, nil), ("uring batch-wait 0", .uring, 0),
    ]
    for connections in [100, 1000] {
        for (label, backend, batchWait) in variants {
            let holder = RigHolder()
            Benchmark(
                "EngineEcho \(label) \(connections) conns",
                configuration: .init(
                    metrics: [.throughput, .wallClock, .mallocCountTotal, EchoMetrics.roundTripsPerSecond,
                              EchoMetrics.cpuPerRoundTrip, EchoMetrics.serverSyscalls, EchoMetrics.clientSyscalls],
                    units: [EchoMetrics.cpuPerRoundTrip: .count],
                    warmupIterations: 3,
                    maxDuration: .seconds(4),
                    maxIterations: 200,
                    setup: { holder.rig = try EchoRig(backend: backend, connections: connections, batchWaitMicroseconds: batchWait) },
                    teardown: {
                        holder.rig?.stop()
                        holder.rig = nil
                    }
                )
            ) { benchmark in
                guard let rig = holder.rig else { throw RigError("no rig: setup failed") }
                let before = try rig.syscalls()
                let cpuStart = processCPUNanoseconds()
                let start = monotonicNanoseconds()
                benchmark.startMeasurement()
                try rig.roundTrips(roundTripsPerIteration)
                benchmark.stopMeasurement()
                let elapsed = monotonicNanoseconds() - start
                let cpu = processCPUNanoseconds() - cpuStart
                let after = try rig.syscalls()
                let perThousand = { (delta: Int) in (delta * 1000 + roundTripsPerIteration / 2) / roundTripsPerIteration }
                benchmark.measurement(EchoMetrics.serverSyscalls, perThousand(after.server - before.server))
                benchmark.measurement(EchoMetrics.clientSyscalls, perThousand(after.client - before.client))
                benchmark.measurement(EchoMetrics.cpuPerRoundTrip, cpu / roundTripsPerIteration)
                if elapsed > 0 {
                    benchmark.measurement(EchoMetrics.roundTripsPerSecond,
                                          Int(Double(roundTripsPerIteration) * 1e9 / Double(elapsed)))
                }
            }
        }
    }
}

/// CPU time of every thread of the process so far.
func processCPUNanoseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
    return now.tv_sec * 1_000_000_000 + now.tv_nsec
}
