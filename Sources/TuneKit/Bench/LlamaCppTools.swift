// LlamaCppTools — where llama.cpp's own tools are (llama-bench, llama-quantize, llama-perplexity): the
// references tune's benchmarks run beside it and the tests check its GGUF outputs with. scripts/llama-cpp
// builds them (b11434, from the sha256-checked PyPI sdist) into ~/.cache/tune/llama.cpp-b11434/bin.

import Foundation

public enum LlamaCppTools {
    /// The directory scripts/llama-cpp builds into: `$TUNE_LLAMA_CPP_DIR/bin`, else ~/.cache/tune/llama.cpp-b11434/bin.
    public static func cachedDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let d = environment["TUNE_LLAMA_CPP_DIR"], !d.isEmpty { return (d as NSString).appendingPathComponent("bin") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/tune/llama.cpp-b11434/bin").path
    }

    /// A tool by name (`llama-quantize`): the first executable of `preferred` (explicit paths), else
    /// `$TUNE_LLAMA_CPP_BIN/NAME` (a directory of built tools, e.g. a cmake build's bin/), else the cached
    /// build; nil when none is executable.
    public static func locate(_ tool: String, preferred: [String?] = [],
                              environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let fromBin = environment["TUNE_LLAMA_CPP_BIN"].flatMap { $0.isEmpty ? nil : ($0 as NSString).appendingPathComponent(tool) }
        let cached = (cachedDirectory(environment: environment) as NSString).appendingPathComponent(tool)
        for p in (preferred + [fromBin, cached]).compactMap({ $0 }) where !p.isEmpty {
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// For tests: the tool, or nil with the reason to skip; when `TUNE_REQUIRE_LLAMA_CPP=1` (scripts/test,
    /// after building them) a missing tool is an error instead, so CI cannot pass by skipping.
    public static func forTest(_ tool: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        if let p = locate(tool, environment: environment) { return p }
        if environment["TUNE_REQUIRE_LLAMA_CPP"] == "1" {
            throw TuneError(.fileAccess, "\(tool) not found (TUNE_REQUIRE_LLAMA_CPP=1): looked in $TUNE_LLAMA_CPP_BIN and \(cachedDirectory(environment: environment)); build it with scripts/llama-cpp")
        }
        return nil
    }
}
