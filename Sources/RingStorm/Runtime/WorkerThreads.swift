import Glibc
import RingStormEngine
import Synchronization

/// Set from any thread (a signal handler's thread, a deadline, an embedding test); read by every
/// engine loop once per poll.
package final class StopFlag: Sendable {
    private let stopped = Atomic<Bool>(false)
    public init() {}
    public func stop() { stopped.store(true, ordering: .releasing) }
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }
}

/// One engine loop on its own thread. The worker is created on that thread because an io_uring set
/// up with `SINGLE_ISSUER` belongs to the thread that created it.
///
/// Workers are generic over their engine and protocol (`ServerWorker<UringEngine, EchoServerProtocol>`).
/// Threads hold them as `any EngineWorker<Snapshot>`; a generic class called through an existential
/// runs its unspecialised code, so workers are wrapped in a `SpecializedWorker` where their types are
/// concrete: one dynamic call per `run` and per published snapshot, nothing per event.
package protocol EngineWorker<Snapshot>: AnyObject {
    associatedtype Snapshot: Sendable
    /// Runs until `stop` is set; publishes progress through `publish` now and then (about once a second).
    func run(until stop: StopFlag, publish: (Snapshot) -> Void)
    /// The final counters, after `run` returned.
    var snapshot: Snapshot { get }
}

/// A worker that listens; its address is known once it is set up (with the kernel's port for port 0).
package protocol ListeningWorker<Snapshot>: EngineWorker {
    var address: SocketAddress { get }
}

/// A worker seen through closures made where its type is concrete (inside `withEngine` and the
/// protocol's switch): those closures, and the `run` loop they call, are compiled for that type, which
/// a call through `any EngineWorker` would not be.
package final class SpecializedWorker<Snapshot: Sendable>: ListeningWorker {
    private let runLoop: (StopFlag, (Snapshot) -> Void) -> Void
    private let takeSnapshot: () -> Snapshot
    package let address: SocketAddress

    package init<Worker: EngineWorker>(_ worker: Worker) where Worker.Snapshot == Snapshot {
        runLoop = { stop, publish in worker.run(until: stop, publish: publish) }
        takeSnapshot = { worker.snapshot }
        address = SocketAddress()
    }

    package init<Worker: ListeningWorker>(_ worker: Worker) where Worker.Snapshot == Snapshot {
        runLoop = { stop, publish in worker.run(until: stop, publish: publish) }
        takeSnapshot = { worker.snapshot }
        address = worker.address
    }

    package func run(until stop: StopFlag, publish: (Snapshot) -> Void) { runLoop(stop, publish) }
    package var snapshot: Snapshot { takeSnapshot() }
}

/// Starts `count` threads, each building its worker with `make(index)` and running it; `start` returns
/// once every worker is set up, or throws the first set-up error (after stopping the others).
package final class WorkerThreads<Snapshot: Sendable>: Sendable {
    private let latest: Locked<[Snapshot?]>
    private let threads: Locked<[pthread_t]>
    public let stopFlag: StopFlag
    /// Kept open while the threads run (the shared port of `listening`).
    private let reservation: PortReservation?

    public init(count: Int, stop: StopFlag = StopFlag(), holding reservation: PortReservation? = nil,
                make: @escaping @Sendable (Int) throws -> any EngineWorker<Snapshot>) throws {
        stopFlag = stop
        self.reservation = reservation
        latest = Locked([Snapshot?](repeating: nil, count: count))
        threads = Locked([])
        let ready = ReadyLatch(count: count)
        for index in 0..<count {
            let spawned = Result { () throws(EngineError) -> pthread_t in try spawnThread(name: "ringstorm-\(index)") { [latest, stopFlag] in
                let worker: any EngineWorker<Snapshot>
                do {
                    worker = try make(index)
                } catch {
                    ready.fail(error)
                    return
                }
                ready.arrive()
                // All workers start together, so a split run (a connect rate shared by the threads)
                // keeps its total from the first moment.
                guard ready.waitForAll() else { return }
                worker.run(until: stopFlag) { snapshot in latest.withLock { $0[index] = snapshot } }
                let final = worker.snapshot
                latest.withLock { $0[index] = final }
            } }
            switch spawned {
            case .success(let thread):
                threads.withLock { $0.append(thread) }
            case .failure(let error):
                ready.fail(error)
                stopFlag.stop()
                join()
                throw error
            }
        }
        if let error = ready.wait() {
            stopFlag.stop()
            join()
            throw error
        }
    }

    /// The latest snapshot each worker published (nil for one that has published nothing yet).
    public var snapshots: [Snapshot?] { latest.withLock { $0 } }

    public func stop() { stopFlag.stop() }

    /// Waits for every thread to end; returns the final snapshots.
    @discardableResult
    public func join() -> [Snapshot] {
        let all = threads.withLock { t in let copy = t; t.removeAll(); return copy }
        for thread in all { pthread_join(thread, nil) }
        return latest.withLock { $0.compactMap { $0 } }
    }
}

extension WorkerThreads {
    /// Starts `count` listening workers on one address. One worker binds it as given; several each
    /// open an `SO_REUSEPORT` listener on the port of a `PortReservation` (so port 0 means one port
    /// for all), which lives as long as the threads. `exclusive` refuses a port another process
    /// already serves; without it (a worker process of `--processes`) the group is joined on purpose.
    public static func listening(count: Int, on address: SocketAddress, exclusive: Bool,
                                 make: @escaping @Sendable (SocketAddress, _ reusePort: Bool) throws -> any ListeningWorker<Snapshot>)
        throws -> (threads: WorkerThreads, address: SocketAddress) {
        guard count > 1 else {
            let single = Locked<SocketAddress?>(nil)
            let threads = try WorkerThreads(count: 1) { _ in
                let worker = try make(address, !exclusive)
                single.withLock { $0 = worker.address }
                return worker
            }
            return (threads, single.withLock { $0 } ?? address)
        }
        let reservation = try PortReservation(address, exclusive: exclusive)
        let threads = try WorkerThreads(count: count, holding: reservation) { _ in try make(reservation.address, true) }
        return (threads, reservation.address)
    }
}

/// A value behind a mutex, as a class so closures on other threads can share it.
///
/// A `pthread_mutex_t`, not `Synchronization.Mutex`: on Linux, `Mutex` waits on a futex inside the
/// uninstrumented Swift runtime, so ThreadSanitizer does not see a contended lock's ordering and
/// reported two threads publishing snapshots under the lock as a race (a false report, but one that
/// would hide real ones). ThreadSanitizer intercepts pthread mutexes.
/// (`@unchecked`: `value` is only touched between lock and unlock.)
package final class Locked<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    public func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body(&value)
    }
}

/// Counts workers that finished setting up, or keeps the first error; then lets them all start at once.
/// (`@unchecked`: a POSIX semaphore is made to be shared between threads; the rest is behind the mutex.)
private final class ReadyLatch: @unchecked Sendable {
    private let count: Int
    private let state: Locked<(remaining: Int, error: (any Error)?)>
    /// Posted once when all arrived or one failed (for `wait`), and `count` times (for `waitForAll`).
    private let semaphore: UnsafeMutablePointer<sem_t>
    private let go: UnsafeMutablePointer<sem_t>

    init(count: Int) {
        self.count = count
        state = Locked((count, nil))
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
        go = .allocate(capacity: 1)
        sem_init(go, 0, 0)
    }

    private func release() {
        sem_post(semaphore)
        for _ in 0..<count { sem_post(go) }
    }

    func arrive() {
        let done = state.withLock { s in s.remaining -= 1; return s.remaining == 0 }
        if done { release() }
    }

    func fail(_ error: any Error) {
        let first = state.withLock { s in
            if s.error == nil { s.error = error; s.remaining = -1; return true }
            return false
        }
        if first { release() }
    }

    /// The caller's wait: nil once every worker is set up, or the first error.
    func wait() -> (any Error)? {
        while sem_wait(semaphore) != 0 && errno == EINTR {}
        return state.withLock { $0.error }
    }

    /// A worker's wait after it arrived: true when all are set up, false when one failed.
    func waitForAll() -> Bool {
        while sem_wait(go) != 0 && errno == EINTR {}
        return state.withLock { $0.error == nil }
    }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
        sem_destroy(go)
        go.deallocate()
    }
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// A plain pthread: engine loops are long-lived and must not be scheduled by a cooperative pool.
func spawnThread(name: String, _ body: @escaping @Sendable () -> Void) throws(EngineError) -> pthread_t {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let result = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    guard result == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw EngineError("pthread_create", Errno(rawValue: result))
    }
    return thread
}

/// A plain pthread nobody joins (a waiter, a progress ticker): detached, so its stack and descriptor
/// are freed when it ends. Before, these were created joinable and never joined, and each one's
/// resources stayed until the process exited (ThreadSanitizer's "thread leak").
func spawnDetachedThread(name: String, _ body: @escaping @Sendable () -> Void) throws(EngineError) {
    let thread = try spawnThread(name: name, body)
    pthread_detach(thread)
}
