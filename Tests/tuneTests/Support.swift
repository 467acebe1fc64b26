// Support — run the built `tune` binary and capture what it prints.
import Foundation

/// The package root, derived from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The real model fetched by scripts/setup, if present.
let realModelPath = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
let hasRealModel = FileManager.default.fileExists(atPath: realModelPath)

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The `tune` executable built next to this test binary.
let tuneBinary: URL = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    return exe.deletingLastPathComponent().appendingPathComponent("tune")
}()

/// Runs `tune args…` and waits for it. Arguments are passed as raw bytes so tests can send invalid UTF-8.
func tune(_ args: [String], rawArgument: [UInt8]? = nil, env: [String: String] = [:]) throws -> RunResult {
    let p = Process()
    p.executableURL = tuneBinary
    p.arguments = args
    p.currentDirectoryURL = packageRoot
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let r = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                     stderr: String(decoding: r, as: UTF8.self))
}

/// A fresh temporary directory.
func makeTempDir() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tune-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

// MARK: - Shared scaffolding (tiny data, tiny pipelines, a started `tune serve`)

/// Writes `count` prompt/completion rows `{"prompt": "doc i", "completion": "c<i mod 3>"}` to `dir/file`.
func writeDocRows(_ count: Int, in dir: URL, file: String = "data.jsonl") throws {
    let rows = (0..<count).map { i in #"{"prompt": "doc \#(i)", "completion": "c\#(i % 3)"}"# }
    try (rows.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent(file), atomically: true, encoding: .utf8)
}

/// The `prepare:` and `train:` sections the tiny-pipeline CLI tests share (data.jsonl with a 20 %
/// eval split, QLoRA rank 4 on the tiny model), at column 0, each optionally with a `resources:` line.
func tinyPrepareAndTrainYAML(steps: Int = 8, evalEvery: Int = 4, prepareResources: String? = nil, trainResources: String? = nil) -> String {
    var y = """
        prepare:
          train: data.jsonl
          split: {eval_fraction: 0.2}

        """
    if let r = prepareResources { y += "  resources: \(r)\n" }
    y += """
        train:
          method: qlora
          lora: {rank: 4, alpha: 8, dropout: 0.0}
          max_steps: \(steps)
          batch_size: 4
          lr: 0.01
          seq_len: 128
          eval_every: \(evalEvery)
          checkpoint_every: 4

        """
    if let r = trainResources { y += "  resources: \(r)\n" }
    return String(y.dropLast())
}

/// A pipeline named `name` on `tiny.gguf` (registry `reg.sqlite`, seed 5) that prepares `data.jsonl`
/// (25 % eval split), trains through the OpenAI-compatible provider at `baseURL` (key from the
/// environment variable `apiKeyEnv`), evaluates exact_match and contains (with `gate`, a flow mapping,
/// when given) and registers with the alias `staging`. `hyperparameters` is a flow mapping.
func managedPipelineYAML(name: String, baseURL: String, apiKeyEnv: String, model: String, suffix: String? = nil,
                         hyperparameters: String, pollInterval: Double, gate: String? = nil) -> String {
    var y = """
        name: \(name)
        base: tiny.gguf
        registry: reg.sqlite
        seed: 5
        prepare:
          train: data.jsonl
          split: {eval_fraction: 0.25}
        train:
          backend: openai
          openai:
            base_url: \(baseURL)
            api_key_env: \(apiKeyEnv)
            model: \(model)

        """
    if let suffix { y += "    suffix: \(suffix)\n" }
    y += """
            hyperparameters: \(hyperparameters)
            poll_interval: \(pollInterval)
        eval:
          metrics: [exact_match, contains]

        """
    if let gate { y += "  gate: \(gate)\n" }
    y += """
        register:
          aliases: [staging]
        """
    return y
}

/// A started `tune serve … --port 0 --json` and the first line it printed (`{"event":"listening","port":N,…}`).
struct StartedServe {
    let process: Process
    let info: [String: Any]
    var port: Int? { info["port"] as? Int }

    /// Starts `tune serve` with `args` (add `--port 0 --json`) and reads its listening line.
    init(_ args: [String], env: [String: String] = [:], stderr: FileHandle? = nil) throws {
        process = Process()
        process.executableURL = tuneBinary
        process.arguments = args
        process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let out = Pipe()
        process.standardOutput = out
        if let stderr { process.standardError = stderr }
        try process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        info = (try? JSONSerialization.jsonObject(with: line.split(separator: 0x0A).first ?? Data()) as? [String: Any]) ?? [:]
    }
}
