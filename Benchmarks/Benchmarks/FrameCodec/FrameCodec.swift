// Encoding and decoding ringstorm REQUEST frames (64-byte payload, 85 bytes on the wire) with RingStorm's
// FrameBuffer / FrameEncoder and FrameDecoder, as the load generator and the server do. One iteration is
// 1,000 frames (scaling factor .kilo: the `*` columns are per frame).
//
// - "one frame per chunk": encode a frame, feed it to the decoder as its own chunk (every frame whole).
// - "4 KiB chunks": encode 1,000 frames back to back, feed them in 4,096-byte chunks, the size of the
//   engine's receive buffers, so about one frame in 48 arrives split and goes through the decoder's buffer.
//
// mallocCountTotal must be 0: the send buffer and the decoder's split-frame buffer are reused once they
// have grown (the warm-up iterations grow them).

import Benchmark
import RingStorm

let payloadSize = 64
let frameSize = WireFormat.requestFrameSize(payloadSize: payloadSize)

/// The encoder's buffer and the decoder, kept across iterations as a connection keeps them.
final class Codec: @unchecked Sendable {
    // @unchecked: package-benchmark runs one benchmark's iterations one after another on one thread.
    var buffer = FrameBuffer(capacity: 4096)
    var decoder = FrameDecoder()
    var sequence: UInt64 = 0
    var checksum: UInt64 = 0

    /// Decodes `chunk`, folding every REQUEST's sequence and payload size into `checksum`.
    @inline(__always)
    func decode(_ chunk: UnsafeRawBufferPointer) throws(ProtocolError) -> Int {
        var sum = checksum
        let frames = try decoder.feed(chunk) { frame in
            if case .request(let sequence, _, let payload) = frame { sum &+= sequence &+ UInt64(payload.count) }
        }
        checksum = sum
        return frames
    }
}

struct CodecError: Error, CustomStringConvertible {
    let description: String
}

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p100: 0])]
    )

    let single = Codec()
    Benchmark("FrameCodec REQUEST 64 B, one frame per chunk", configuration: configuration) { benchmark in
        var frames = 0
        for _ in benchmark.scaledIterations {
            single.sequence &+= 1
            single.buffer.removeAll()
            single.buffer.appendRequest(sequence: single.sequence, timestamp: 1_700_000_000_000_000_000, payloadSize: payloadSize)
            frames += try single.buffer.withBytes { chunk throws(ProtocolError) in try single.decode(chunk) }
        }
        guard frames == benchmark.scaledIterations.count else {
            throw CodecError(description: "decoded \(frames) frames of \(benchmark.scaledIterations.count)")
        }
        blackHole(single.checksum)
    }

    let chunked = Codec()
    Benchmark("FrameCodec REQUEST 64 B, 1000 frames in 4 KiB chunks", configuration: configuration) { benchmark in
        chunked.buffer.removeAll()
        for _ in benchmark.scaledIterations {
            chunked.sequence &+= 1
            chunked.buffer.appendRequest(sequence: chunked.sequence, timestamp: 1_700_000_000_000_000_000, payloadSize: payloadSize)
        }
        let frames = try chunked.buffer.withBytes { bytes throws(ProtocolError) in
            var frames = 0
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + 4096, bytes.count)
                frames += try chunked.decode(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                offset = end
            }
            return frames
        }
        guard frames == benchmark.scaledIterations.count, !chunked.decoder.hasPartialFrame else {
            throw CodecError(description: "decoded \(frames) frames of \(benchmark.scaledIterations.count)")
        }
        blackHole(chunked.checksum)
    }
}
