// swift-tools-version: 6.1
// RingStorm's libFuzzer targets, in a package of their own (as Benchmarks/ is) so the main package's
// `swift build` / `swift test` and CI never build them. Build and run them with ../Scripts/fuzz, which
// passes `-sanitize=fuzzer,address`; see README.md beside this file.
import PackageDescription

let package = Package(
    name: "RingStormFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "RingStorm", path: ".."),
    ],
    targets: [
        // Split-invariance helpers shared by the targets (a deterministic PRNG, chunking).
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        // The ringstorm frame decoder.
        .executableTarget(name: "FuzzFrameDecoder",
                          dependencies: ["FuzzSupport", .product(name: "RingStorm", package: "RingStorm")],
                          path: "Sources/FuzzFrameDecoder"),
        // The HTTP/1.1 request and response parser.
        .executableTarget(name: "FuzzHTTPParser",
                          dependencies: ["FuzzSupport", .product(name: "RingStorm", package: "RingStorm")],
                          path: "Sources/FuzzHTTPParser"),
        // The raw protocol's response framing (fixed size, delimiter, length prefix).
        .executableTarget(name: "FuzzRawFramer",
                          dependencies: ["FuzzSupport", .product(name: "RingStorm", package: "RingStorm")],
                          path: "Sources/FuzzRawFramer"),
        // The echo protocol's byte counter.
        .executableTarget(name: "FuzzEchoMatcher",
                          dependencies: ["FuzzSupport", .product(name: "RingStorm", package: "RingStorm")],
                          path: "Sources/FuzzEchoMatcher"),
        // Duration and size parsing. `DurationParsing` is `package` in RingStorm, so invisible from
        // this package: the target compiles the library's own DurationParsing.swift (a symlink, the same
        // file, not a copy) instead of widening RingStorm's public API for a fuzzer.
        .executableTarget(name: "FuzzDurations", dependencies: ["FuzzSupport"], path: "Sources/FuzzDurations"),
        // SocketAddress(parsing:).
        .executableTarget(name: "FuzzAddress",
                          dependencies: ["FuzzSupport", .product(name: "RingStormEngine", package: "RingStorm")],
                          path: "Sources/FuzzAddress"),
        // LoadReport / ServerReport / LoadWorkerReport read from JSON (what a `ringstorm merge` reads).
        .executableTarget(name: "FuzzReportJSON",
                          dependencies: ["FuzzSupport", .product(name: "RingStorm", package: "RingStorm")],
                          path: "Sources/FuzzReportJSON"),
    ],
    swiftLanguageModes: [.v6]
)
