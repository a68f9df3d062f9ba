import CURing
import Glibc

/// A provided-buffer ring: up to `count` receive buffers of `size` bytes the kernel picks from for
/// multishot receives. A buffer is lent to the caller for the length of one handler call and goes
/// straight back.
///
/// The ring starts with `initialCount` buffers and doubles (`grow`) each time the kernel finds it empty
/// (ENOBUFS), up to `count`. The kernel takes buffers from the head and we give them back at the tail,
/// so every buffer in the ring is written in turn: with all of them handed out at start, 4,096 × 4 KiB
/// became 16 MiB of resident memory as soon as a few thousand messages had arrived, about 1.1 KiB per
/// connection at 15,000 idle connections. Grown on demand, the ring holds what the receives in flight
/// at once need (the memory is reserved up front but untouched pages cost nothing).
///
/// With incremental consumption (`IOU_PBUF_RING_INC`, kernel 6.12) a receive takes only the bytes it
/// needs: the kernel leaves the rest of the buffer at the ring's head (the CQE says so with
/// `IORING_CQE_F_BUF_MORE`) and the next receive, of any connection, continues after it. The CQE
/// does not say where in the buffer its bytes start, so each buffer's consumed offset is kept here;
/// the buffer comes back to us (and is recycled) with the first CQE that lacks `F_BUF_MORE`.
final class ProvidedBuffers {
    /// Buffers handed to the kernel at start.
    static let initialCount = 256
    let group: UInt16
    private let ring: UnsafeMutablePointer<io_uring_buf_ring>
    private let memory: UnsafeMutableRawPointer
    private let count: Int
    private let size: Int
    private let mask: Int32
    /// Buffers handed to the kernel so far (ids 0..<populated).
    private var populated: Int
    /// Whether the kernel took `IOU_PBUF_RING_INC`.
    let incremental: Bool
    /// Per buffer, the bytes earlier receives took from it (incremental consumption only).
    private let consumed: UnsafeMutablePointer<UInt32>
    /// Each buffer's ring entry (the ring's running tail when the buffer was added): a bundle's
    /// completion names its first buffer only, and the rest are the entries after it, each of which
    /// names its buffer in the ring itself (`bid`: written by us only, the kernel never changes it).
    private let entryOf: UnsafeMutablePointer<UInt16>
    /// Why a requested feature is not used (the kernel refused it), for the engine's notes.
    private(set) var note: String?

    init(ring uring: inout io_uring, count: Int, size: Int, group: UInt16, incremental wantIncremental: Bool,
         syscalls: Counters) throws(EngineError) {
        guard count > 0, count & (count - 1) == 0, count <= 32768 else {
            throw EngineError("provided buffers", .invalidArgument,
                              reason: .invalidConfiguration("the buffer count must be a power of two up to 32768, not \(count)"))
        }
        self.group = group
        self.count = count
        self.size = size
        mask = io_uring_buf_ring_mask(UInt32(count))
        var error: Int32 = 0
        var registered: UnsafeMutablePointer<io_uring_buf_ring>? = nil
        var useIncremental = false
        if wantIncremental {
            syscalls.record(.mmap)
            syscalls.record(.ioUringRegister)
            registered = curing_setup_buf_ring(&uring, UInt32(count), Int32(group), UInt32(curing_pbuf_ring_inc), &error)
            let decision = FeatureProbe.incrementalBuffers(registrationResult: registered == nil ? error : 0)
            useIncremental = decision.use
            note = decision.note
        }
        if registered == nil {
            syscalls.record(.mmap)
            syscalls.record(.ioUringRegister)
            registered = curing_setup_buf_ring(&uring, UInt32(count), Int32(group), 0, &error)
        }
        guard let ring = registered else {
            throw EngineError("io_uring_register_buf_ring", .fromNegated(error),
                              reason: .kernelLacks(feature: "provided buffer rings", since: "5.19"))
        }
        self.ring = ring
        incremental = useIncremental
        consumed = .allocate(capacity: count)
        consumed.initialize(repeating: 0, count: count)
        entryOf = .allocate(capacity: count)
        entryOf.initialize(repeating: 0, count: count)
        memory = UnsafeMutableRawPointer.allocate(byteCount: count * size, alignment: 4096)
        populated = 0
        add(upTo: min(count, Self.initialCount))
    }

    /// The kernel ran out of buffers: double the ring (up to `count`).
    func grow() {
        guard populated < count else { return }
        add(upTo: min(count, populated * 2))
    }

    private func add(upTo target: Int) {
        let added = target - populated
        for offset in 0..<added {
            let id = populated + offset
            entryOf[id] = ring.pointee.tail &+ UInt16(offset)
            io_uring_buf_ring_add(ring, memory + id * size, UInt32(size), UInt16(id), mask, Int32(offset))
        }
        io_uring_buf_ring_advance(ring, Int32(added))
        populated = target
    }

    /// Where a receive's bytes start in buffer `id`: after what earlier receives took from it.
    @inline(__always)
    func address(of id: UInt16) -> UnsafeMutableRawPointer { memory + Int(id) * size + Int(consumed[Int(id)]) }

    /// A receive of `length` bytes into buffer `id` is handled: with `kernelKeeps` (`F_BUF_MORE`,
    /// incremental consumption) the kernel goes on filling the buffer after those bytes; otherwise it
    /// is ours again and goes back to the ring. Called for every CQE that carries a buffer, stale or not.
    @inline(__always)
    func finished(_ id: UInt16, length: Int32, kernelKeeps: Bool) {
        if incremental {
            if kernelKeeps {
                consumed[Int(id)] &+= UInt32(max(length, 0))
                return
            }
            consumed[Int(id)] = 0
        }
        recycle(id)
    }

    /// Hands a buffer back to the kernel.
    @inline(__always)
    private func recycle(_ id: UInt16) {
        entryOf[Int(id)] = ring.pointee.tail
        io_uring_buf_ring_add(ring, memory + Int(id) * size, UInt32(size), id, mask, 0)
        io_uring_buf_ring_advance(ring, 1)
    }

    /// Bytes of buffer `id` not yet taken by a receive.
    @inline(__always)
    func available(_ id: UInt16) -> Int { size - Int(consumed[Int(id)]) }

    /// The buffer in the ring entry after buffer `id`'s: where a bundle continues.
    @inline(__always)
    func next(after id: UInt16) -> UInt16 {
        let entry = Int(entryOf[Int(id)] &+ 1) & Int(mask)
        return UnsafeRawPointer(ring).assumingMemoryBound(to: io_uring_buf.self)[entry].bid
    }

    func release(ring uring: inout io_uring) {
        _ = io_uring_unregister_buf_ring(&uring, Int32(group))
        munmap(ring, count * MemoryLayout<io_uring_buf>.size)
        memory.deallocate()
        consumed.deallocate()
        entryOf.deallocate()
    }
}
