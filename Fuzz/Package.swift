// swift-tools-version: 6.1
// RingStorm's libFuzzer targets, in a package of their own (as Benchmarks/ is) so the main package's
// `swift build` / `swift test` and CI never build them. Build and run them with ../Scripts/fuzz, which
// passes `-sanitize=fuzzer,address`; see README.md beside this file.
import PackageDescription

/// What a target fuzzing the library's public API depends on.
let onRingStorm: [Target.Dependency] = ["FuzzSupport", .product(name: "RingStorm", package: "RingStorm")]

let package = Package(
    name: "RingStormFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "RingStorm", path: ".."),
    ],
    targets: [
        // Split-invariance helpers shared by the targets (a deterministic PRNG, chunking).
        .target(name: "FuzzSupport"),
        // The ringstorm frame decoder.
        .executableTarget(name: "FuzzFrameDecoder", dependencies: onRingStorm),
        // The HTTP/1.1 request and response parser.
        .executableTarget(name: "FuzzHTTPParser", dependencies: onRingStorm),
        // The raw protocol's response framing (fixed size, delimiter, length prefix).
        .executableTarget(name: "FuzzRawFramer", dependencies: onRingStorm),
        // The echo protocol's byte counter.
        .executableTarget(name: "FuzzEchoMatcher", dependencies: onRingStorm),
        // Duration and size parsing. `DurationParsing` is `package` in RingStorm, so invisible from
        // this package: the target compiles the library's own DurationParsing.swift (a symlink, the same
        // file, not a copy) instead of widening RingStorm's public API for a fuzzer.
        .executableTarget(name: "FuzzDurations", dependencies: ["FuzzSupport"]),
        // SocketAddress(parsing:).
        .executableTarget(name: "FuzzAddress", dependencies: ["FuzzSupport", .product(name: "RingStormEngine", package: "RingStorm")]),
        // LoadReport / ServerReport / LoadWorkerReport read from JSON (what a `ringstorm merge` reads).
        .executableTarget(name: "FuzzReportJSON", dependencies: onRingStorm),
    ],
    swiftLanguageModes: [.v6]
)
