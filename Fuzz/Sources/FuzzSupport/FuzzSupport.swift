/// What every fuzz target shares: a deterministic PRNG seeded from the input, so a crash reproduces
/// from its input file alone, and a way to cut a byte stream into random chunks.

/// SplitMix64.
public struct FuzzRandom {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    /// A seed from the input's bytes (FNV-1a), so different inputs split differently.
    public init(hashing bytes: UnsafeRawBufferPointer) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        state = h
    }
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    /// 0..<bound (bound > 0).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// Chunk boundaries covering 0..<count: mostly small chunks (1...8 bytes, where split handling lives),
/// sometimes a large one; empty chunks included now and then.
public func randomChunks(count: Int, _ random: inout FuzzRandom) -> [Range<Int>] {
    var chunks: [Range<Int>] = []
    var at = 0
    while at < count {
        let size: Int
        switch random.below(8) {
        case 0: size = 0
        case 1: size = 1 + random.below(max(count - at, 1))
        default: size = 1 + random.below(8)
        }
        let end = min(at + size, count)
        chunks.append(at..<end)
        at = end
    }
    return chunks
}

/// Stops the fuzzer with a message when an invariant fails (a crash libFuzzer records with its input).
public func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                  file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fail(message(), file: file, line: line) }
}

/// Reads the fuzz input's leading configuration bytes.
public struct InputReader {
    public let bytes: UnsafeRawBufferPointer
    public var offset = 0
    public init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        bytes = UnsafeRawBufferPointer(start: size > 0 ? UnsafeRawPointer(data) : nil, count: size)
    }
    /// The next byte, or 0 past the end.
    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }
    /// What is left.
    public var rest: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[min(offset, bytes.count)...])
    }
}

/// libFuzzer's entry for a program that has its own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// Runs libFuzzer on `callback` with the process's arguments. SwiftPM links an executable target's
/// entry point as `<Target>_main` aliased to `main` (so tests can link the executable), which leaves no
/// place for libFuzzer's own `main`: each target defines `<Target>_main` and calls this.
public func runFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                      _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}

/// Stops the fuzzer with a message (fatalError's message is printed in release builds too).
public func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError("invariant failed: \(message)", file: file, line: line)
}
