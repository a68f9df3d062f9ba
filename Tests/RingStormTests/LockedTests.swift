import Foundation
import Testing
@testable import RingStorm

/// `Locked` under contention. Under ThreadSanitizer (`Scripts/sanitizers thread`) this is the
/// regression test for its false race report: with `Synchronization.Mutex` (a futex in the
/// uninstrumented runtime) two contending writers were reported as a race; a pthread mutex is seen.
@Suite struct LockedTests {
    @Test func contendingWritersAreSerialized() async throws {
        let counter = Locked(0)
        let threads = 4, rounds = 20_000
        let done = Locked(0)
        for _ in 0..<threads {
            Thread {
                for _ in 0..<rounds { counter.withLock { $0 += 1 } }
                done.withLock { $0 += 1 }
            }.start()
        }
        try await waitUntil(seconds: 10) { done.withLock { $0 } == threads }
        #expect(counter.withLock { $0 } == threads * rounds)
    }
}
