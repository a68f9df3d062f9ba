/// Fixed-capacity storage indexed by connection slot, allocated once per engine.
///
/// The engines keep per-connection state and counters here rather than in Swift arrays held by the
/// engine object: an array stored in a class pays a dynamic exclusivity check and a uniqueness check
/// on every write, which on the per-completion path measured about 3% of the server's CPU. Element
/// addresses also never move, so the kernel may be handed pointers into it.
///
/// Package-wide so the programs above the engine keep their per-connection state the same way.
package struct FlatArray<Element> {
    @usableFromInline package let base: UnsafeMutablePointer<Element>
    package let count: Int

    package init(repeating value: Element, count: Int) {
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: value, count: max(count, 1))
        self.count = count
    }

    /// Addressors, not get/set: `clients[c].stage` reads one field in place and `clients[c].x += 1`
    /// writes one, where a getter copies the whole element out (and a setter back) — through its value
    /// witness (`__swift_memcpy97_8` for the load worker's 97-byte client state) wherever the optimizer
    /// leaves the generic accessor unspecialised, which it did in the load worker's hot loop.
    @inlinable
    package subscript(_ index: Int) -> Element {
        @inline(__always) unsafeAddress { UnsafePointer(base + index) }
        @inline(__always) nonmutating unsafeMutableAddress { base + index }
    }

    package var indices: Range<Int> { 0..<count }

    package func deallocate() {
        base.deinitialize(count: max(count, 1))
        base.deallocate()
    }
}
