// OpenBLASCore — which OpenBLAS kernel core (`openblas_get_corename`) the GEMM bench's reference
// runs, and the core it should run. OpenBLAS's own detection misses some newer CPUs and falls back
// to an older core (an AVX-512 Xeon ran 'Haswell'-class kernels at 68 GFLOP/s, 306 GFLOP/s with
// OPENBLAS_CORETYPE=SkylakeX), which would make every ratio against it flattering. So the bench
// loads the library, reads the core, and when that core lacks an ISA the CPU has, unloads it, sets
// OPENBLAS_CORETYPE to the best core the CPU supports (read once at library init) and loads it again.

import Foundation

public enum OpenBLASCore {
    /// ISA tier of an OpenBLAS core name (case-insensitive): 3 AVX-512 (+ 1 for AVX-512 BF16), 2 AVX2,
    /// 1 AVX, 0 older or unknown.
    static func tier(core: String) -> Int {
        switch core.lowercased() {
        case "cooperlake", "sapphirerapids": return 4
        case "skylakex": return 3
        case "haswell", "zen", "excavator": return 2
        case "sandybridge", "bulldozer", "piledriver", "steamroller": return 1
        default: return 0
        }
    }

    /// The CPU's x86 feature flags and vendor (Linux /proc/cpuinfo; empty elsewhere).
    public struct CPU: Sendable {
        public var vendor: String
        public var flags: Set<String>
        public init(vendor: String, flags: Set<String>) { self.vendor = vendor; self.flags = flags }

        public static func current() -> CPU {
            guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return CPU(vendor: "", flags: []) }
            var vendor = "", flags: Set<String> = []
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else { continue }
                if parts[0] == "vendor_id", vendor.isEmpty { vendor = parts[1] }
                if parts[0] == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
                if !vendor.isEmpty && !flags.isEmpty { break }
            }
            return CPU(vendor: vendor, flags: flags)
        }

        /// The OpenBLAS core that uses everything this CPU has: Cooperlake (AVX-512 with BF16),
        /// SkylakeX (AVX-512 F/CD/BW/DQ/VL), Zen or Haswell (AVX2 + FMA, AMD or not), Sandybridge
        /// (AVX); nil for older CPUs or unknown flags.
        public var bestCore: String? {
            if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) {
                return flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
            }
            if flags.contains("avx2") && flags.contains("fma") { return vendor == "AuthenticAMD" ? "Zen" : "Haswell" }
            if flags.contains("avx") { return "Sandybridge" }
            return nil
        }
    }

    /// The core to force for the reference, or nil when OpenBLAS's own pick `detected` already has
    /// every ISA tier the CPU has (or the CPU is not known).
    public static func override(detected: String, cpu: CPU) -> String? {
        guard let best = cpu.bestCore, tier(core: detected) < tier(core: best) else { return nil }
        return best
    }

    /// What the bench measured against: the loaded sgemm, the core it runs and how it was chosen.
    public struct Loaded {
        public let handle: UnsafeMutableRawPointer
        /// `openblas_get_corename()` of the loaded library (nil if it lacks the symbol).
        public let core: String?
        /// `openblas_get_config()` (version and build options), if present.
        public let config: String?
        /// One line saying how the core was chosen (detection, the user's OPENBLAS_CORETYPE, or the bench's override).
        public let note: String
    }

    private static func corename(_ h: UnsafeMutableRawPointer, _ symbol: String) -> String? {
        guard let f = dlsym(h, symbol) else { return nil }
        return unsafeBitCast(f, to: (@convention(c) () -> UnsafePointer<CChar>?).self)().map { String(cString: $0) }
    }

    /// Loads libopenblas.so.0 for the bench, on the best core this CPU supports (see the file comment).
    /// A user's OPENBLAS_CORETYPE is respected as given. nil if the library is not installed.
    /// `simulatedDetection`: the first load runs this core instead of OpenBLAS's detection (tests and
    /// `tune bench gemm --openblas-simulate-detection`: the override path on a CPU OpenBLAS detects right).
    public static func load(cpu: CPU = .current(), library: String = "libopenblas.so.0", simulatedDetection: String? = nil) -> Loaded? {
        let userCore = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].flatMap { $0.isEmpty ? nil : $0 }
        if let simulatedDetection, userCore == nil { setenv("OPENBLAS_CORETYPE", simulatedDetection, 1) }
        let first = dlopen(library, RTLD_NOW | RTLD_LOCAL)
        if simulatedDetection != nil, userCore == nil { unsetenv("OPENBLAS_CORETYPE") }
        guard var h = first else { return nil }
        let detected = corename(h, "openblas_get_corename")
        let config = corename(h, "openblas_get_config")
        let cpuLine = cpu.bestCore.map { "the CPU's best core is \($0)" } ?? "CPU features unknown"
        if let user = userCore {
            return Loaded(handle: h, core: detected, config: config,
                          note: "core \(detected ?? "?") (OPENBLAS_CORETYPE=\(user) set by the user; \(cpuLine))")
        }
        guard let detected else {
            return Loaded(handle: h, core: nil, config: config, note: "core unknown (no openblas_get_corename)")
        }
        guard let best = override(detected: detected, cpu: cpu) else {
            return Loaded(handle: h, core: detected, config: config, note: "core \(detected) (OpenBLAS's own detection; \(cpuLine))")
        }
        // The core is chosen once, at library init: unload, set the type, load again.
        dlclose(h)
        setenv("OPENBLAS_CORETYPE", best, 1)
        defer { unsetenv("OPENBLAS_CORETYPE") }
        guard let h2 = dlopen(library, RTLD_NOW | RTLD_LOCAL) else { return nil }
        h = h2
        let now = corename(h, "openblas_get_corename") ?? "?"
        let note = now.lowercased() == best.lowercased()
            ? "core \(now) (OPENBLAS_CORETYPE=\(best) set by the bench: \(simulatedDetection == nil ? "OpenBLAS's own detection" : "the simulated detection") picked \(detected), which lacks ISA this CPU has)"
            : "core \(now) (OpenBLAS's detection picked \(detected), which lacks ISA this CPU has; OPENBLAS_CORETYPE=\(best) did not take effect: the ratios flatter tune)"
        return Loaded(handle: h, core: now, config: config, note: note)
    }
}
