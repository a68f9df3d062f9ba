import CURing
import Glibc

/// A provided-buffer ring: `count` receive buffers of `size` bytes the kernel picks from for multishot
/// receives. A buffer is lent to the caller for the length of one handler call and goes straight back.
final class ProvidedBuffers {
    let group: UInt16
    private let ring: UnsafeMutablePointer<io_uring_buf_ring>
    private let memory: UnsafeMutableRawPointer
    private let count: Int
    private let size: Int
    private let mask: Int32

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
        for id in 0..<count {
            io_uring_buf_ring_add(ring, memory + id * size, UInt32(size), UInt16(id), mask, Int32(id))
        }
        io_uring_buf_ring_advance(ring, Int32(count))
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
