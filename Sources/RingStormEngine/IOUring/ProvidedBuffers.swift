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
    private(set) var populated: Int

    init(ring uring: inout io_uring, count: Int, size: Int, group: UInt16, syscalls: Counters) throws(EngineError) {
        guard count > 0, count & (count - 1) == 0, count <= 32768 else {
            throw EngineError("provided buffers", .invalidArgument,
                              reason: .invalidConfiguration("the buffer count must be a power of two up to 32768, not \(count)"))
        }
        self.group = group
        self.count = count
        self.size = size
        mask = io_uring_buf_ring_mask(UInt32(count))
        var error: Int32 = 0
        syscalls.record(.mmap)
        syscalls.record(.ioUringRegister)
        guard let ring = curing_setup_buf_ring(&uring, UInt32(count), Int32(group), &error) else {
            throw EngineError("io_uring_register_buf_ring", .fromNegated(error),
                              reason: .kernelLacks(feature: "provided buffer rings", since: "5.19"))
        }
        self.ring = ring
        memory = UnsafeMutableRawPointer.allocate(byteCount: count * size, alignment: 4096)
        populated = 0
        add(upTo: min(count, Self.initialCount))
    }

    /// The kernel ran out of buffers: double the ring (up to `count`). False when it is full already.
    @discardableResult
    func grow() -> Bool {
        guard populated < count else { return false }
        add(upTo: min(count, populated * 2))
        return true
    }

    private func add(upTo target: Int) {
        let added = target - populated
        for offset in 0..<added {
            let id = populated + offset
            io_uring_buf_ring_add(ring, memory + id * size, UInt32(size), UInt16(id), mask, Int32(offset))
        }
        io_uring_buf_ring_advance(ring, Int32(added))
        populated = target
    }

    @inline(__always)
    func address(of id: UInt16) -> UnsafeMutableRawPointer { memory + Int(id) * size }

    /// Hands a buffer back to the kernel.
    @inline(__always)
    func recycle(_ id: UInt16) {
        io_uring_buf_ring_add(ring, memory + Int(id) * size, UInt32(size), id, mask, 0)
        io_uring_buf_ring_advance(ring, 1)
    }

    func release(ring uring: inout io_uring) {
        _ = io_uring_unregister_buf_ring(&uring, Int32(group))
        munmap(ring, count * MemoryLayout<io_uring_buf>.size)
        memory.deallocate()
    }
}
