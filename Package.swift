// swift-tools-version:6.1
// tune — fine-tuning pipeline orchestrator.
// Dependencies point one way: tune → TuneKit → Engine → CKernels.
import PackageDescription

let package = Package(
    name: "tune",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tune", targets: ["tune"]),
        .library(name: "TuneKit", targets: ["TuneKit"]),
        .library(name: "Engine", targets: ["Engine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    ],
    targets: [
        // C kernels: plain C, explicit shapes, runtime ISA dispatch (no arch compile flags).
        // Optimized even in debug builds so tests exercise the real fast paths at real speed.
        .target(
            name: "CKernels",
            cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))],
            linkerSettings: [.linkedLibrary("pthread"), .linkedLibrary("m")]
        ),
        // System libcurl (managed fine-tuning client, webhooks).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // System zlib (compressed token shards).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "Engine", dependencies: ["CKernels"]),
        .target(
            name: "TuneKit",
            dependencies: [
                "Engine", "CCurl", "CZlib", "Yams",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // `tune serve`: the OpenAI fine-tuning + chat API over Hummingbird (NIO stays out of TuneKit).
        .target(
            name: "TuneServer",
            dependencies: [
                "TuneKit", "Engine",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "tune",
            dependencies: [
                "TuneKit", "Engine", "TuneServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "CKernelsTests", dependencies: ["CKernels", "Engine"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "CKernels"]),
        // Test support: a loopback HTTP server and a fake OpenAI-compatible provider played on it.
        .target(name: "LoopbackHTTP", path: "Tests/LoopbackHTTP"),
        .testTarget(name: "TuneKitTests", dependencies: ["TuneKit", "Engine", "LoopbackHTTP", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(
            name: "TuneServerTests",
            dependencies: [
                "TuneServer", "TuneKit", "Engine", "LoopbackHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .testTarget(name: "tuneTests", dependencies: ["tune", "TuneKit", "Engine", "LoopbackHTTP"]),
    ],
    swiftLanguageModes: [.v6]
)
