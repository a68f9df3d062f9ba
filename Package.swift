// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "RingStorm",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RingStorm", targets: ["RingStorm"]),
        .library(name: "RingStormEngine", targets: ["RingStormEngine"]),
        .executable(name: "ringstorm", targets: ["ringstorm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        // `--metrics HOST:PORT`: swift-metrics' API with the Prometheus backend (the CLI only).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // Diagnostics (banners, live lines) through swift-log, `--log-level`.
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    ],
    targets: [
        // The C shim: only what Swift cannot import from liburing by itself.
        .target(
            name: "CURing",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        // zlib (system library): HdrHistogram's compressed V2 histogram encoding in reports.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // The engine: io_uring and epoll backends behind one interface.
        .target(
            name: "RingStormEngine",
            dependencies: ["CURing"]
        ),
        // Server, load generator, protocol, reports: what a test rig embeds.
        .target(
            name: "RingStorm",
            dependencies: [
                "RingStormEngine",
                "CZlib",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "ringstorm",
            dependencies: [
                "RingStorm",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "RingStormEngineTests", dependencies: ["RingStormEngine"]),
        .testTarget(name: "RingStormTests", dependencies: ["RingStorm", "RingStormEngine", "ringstorm"]),
    ],
    swiftLanguageModes: [.v6]
)
