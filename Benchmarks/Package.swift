// swift-tools-version: 6.1
// RingStorm's package-benchmark suite, in a package of its own (as SwiftNIO keeps its benchmarks) so the
// main package, its build and CI never resolve or build package-benchmark or SwiftNIO.
//
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
//
// See README.md beside this file.
import PackageDescription

let package = Package(
    name: "RingStormBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "RingStorm", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
        // For the comparison against what users would otherwise pick: a SwiftNIO echo server.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        // Echo round trips between two engines in one process, both backends.
        .executableTarget(
            name: "EngineEcho",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RingStormEngine", package: "RingStorm"),
            ],
            path: "Benchmarks/EngineEcho",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Encoding and decoding ringstorm REQUEST frames.
        .executableTarget(
            name: "FrameCodec",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "RingStorm", package: "RingStorm"),
            ],
            path: "Benchmarks/FrameCodec",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A minimal SwiftNIO TCP echo server, driven by ../shared/yardsticks/measure.sh (yardsticks.sh WITH_NIO=1).
        .executableTarget(
            name: "nio-echo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/nio-echo"
        ),
    ],
    swiftLanguageModes: [.v6]
)
