import Glibc
import RingStormEngine
import Synchronization

/// A plain pthread running a test peer (blocking sockets) beside the engine's thread, with a result
/// handed back on `join`. Peers return what they saw; the test asserts on it after joining, on the
/// test's own thread, so every expectation is attributed to the right test.
final class PeerThread<Result: Sendable>: @unchecked Sendable {
    private var handle = pthread_t()
    private var result: Result?
    private let finished = Atomic<Bool>(false)
    private var joined = false

    private init() {}

    static func start(_ body: @escaping @Sendable () -> Result) -> PeerThread<Result> {
        let thread = PeerThread<Result>()
        let start = ThreadStart {
            thread.result = body()
            thread.finished.store(true, ordering: .releasing)
        }
        let rc = pthread_create(&thread.handle, nil, threadEntry, Unmanaged.passRetained(start).toOpaque())
        precondition(rc == 0, "pthread_create: \(rc)")
        return thread
    }

    var isFinished: Bool { finished.load(ordering: .acquiring) }

    /// Waits for the thread and returns its result (bounded: peers bound every blocking call).
    func join() -> Result {
        if !joined {
            pthread_join(handle, nil)
            joined = true
        }
        return result!
    }
}

private final class ThreadStart {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

private func threadEntry(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<ThreadStart>.fromOpaque(argument!).takeRetainedValue().run()
    return nil
}

/// Runs `body` on a fresh thread and waits for it: for work that changes per-thread kernel state
/// (an unshared descriptor table) and must not leak into the test runner's pooled threads.
func onDedicatedThread<R: Sendable>(_ body: @escaping @Sendable () -> R) -> R {
    PeerThread.start(body).join()
}

/// A counter shared between the engine's thread and peer threads.
final class SharedCounter: Sendable {
    private let value = Atomic<Int>(0)

    func increment() { value.add(1, ordering: .sequentiallyConsistent) }
    var current: Int { value.load(ordering: .sequentiallyConsistent) }

    /// Waits (sleeping 1 ms at a time) until the count reaches `target`; false after `seconds`
    /// (scaled by `sanitizerScale` under a sanitizer).
    func wait(forAtLeast target: Int, seconds: Double) -> Bool {
        let deadline = monotonicNanoseconds() + Int64(seconds * sanitizerScale * 1e9)
        while current < target {
            if monotonicNanoseconds() > deadline { return false }
            usleep(1000)
        }
        return true
    }
}
