// TrainCLITests — `tune train` as users run it: a real process killed with SIGKILL mid-training and
// run again ends with exactly the adapter and loss curve of an uninterrupted run; bad
// hyperparameters fail before any work with exit 65; --json emits one event per line.
import Foundation
import Testing
import Engine

private func makeTrainingInputs() throws -> (dir: URL, model: String, data: String) {
    let dir = try makeTempDir()
    let model = dir.appendingPathComponent("tiny.gguf").path
    try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 4, weightType: .q4_1)
    let rows = (0..<24).map { i in #"{"prompt": "item \#(i) is", "completion": " class \#(i % 3)"}"# }
    let data = dir.appendingPathComponent("train.jsonl").path
    try (rows.joined(separator: "\n") + "\n").write(toFile: data, atomically: true, encoding: .utf8)
    return (dir, model, data)
}

private func trainArgs(_ model: String, _ data: String, _ out: String) -> [String] {
    ["train", "--model", model, "--data", data, "--out", out, "--qlora", "--rank", "4", "--steps", "40",
     "--batch", "2", "--seq-len", "128", "--lr", "5e-3", "--checkpoint-every", "4", "--seed", "3", "--threads", "1"]
}

/// Starts `tune args…`, reads its stdout line by line, and SIGKILLs it once `when(line)` holds.
private func tuneKilled(_ args: [String], when: (String) -> Bool) throws -> Int32 {
    let p = Process()
    p.executableURL = tuneBinary
    p.arguments = args
    p.currentDirectoryURL = packageRoot
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    var buffer = Data()
    reading: while true {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        buffer += chunk
        while let nl = buffer.firstIndex(of: 10) {
            let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
            buffer = Data(buffer[(nl + 1)...])
            if when(line) { kill(p.processIdentifier, SIGKILL); break reading }
        }
    }
    p.waitUntilExit()
    return p.terminationStatus
}

@Suite struct TrainCLITests {
    @Test func killedTrainingResumesToTheSameAdapter() throws {
        let (dir, model, data) = try makeTrainingInputs()
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = dir.appendingPathComponent("whole").path, killed = dir.appendingPathComponent("killed").path

        let full = try tune(trainArgs(model, data, whole) + ["--json"])
        #expect(full.status == 0, "\(full.stderr)")
        let lines = full.stdout.split(separator: "\n")
        #expect(lines.contains { $0.contains(#""event":"step""#) } && lines.last?.contains(#""event":"finished""#) == true)

        let status = try tuneKilled(trainArgs(model, data, killed) + ["--json"]) { $0.contains(#""step":10,"#) || $0.contains(#""step":10}"#) }
        #expect(status == 9, "expected SIGKILL, got \(status)")
        let resumed = try tune(trainArgs(model, data, killed))
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resumed at step"))

        for file in ["adapter_model.safetensors", "adapter_config.json"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: whole).appendingPathComponent(file))
            let b = try Data(contentsOf: URL(fileURLWithPath: killed).appendingPathComponent(file))
            #expect(a == b, "\(file) differs after resume")
        }
        func log(_ d: String) throws -> Any? {
            let s = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d).appendingPathComponent("trainer_state.json"))) as? [String: Any]
            return s?["log"]
        }
        #expect((try log(whole) as? NSArray) == (try log(killed) as? NSArray))
    }

    @Test(arguments: [
        (["--rank", "0"], "lora.rank: expected a positive integer"), (["--lr", "0"], "learning rate"), (["--targets", "q_proj,foo_proj"], "unknown module 'foo_proj'"),
        (["--seq-len", "100000"], "context length"),
    ])
    func badHyperparameters(extra: [String], message: String) throws {
        let (dir, model, data) = try makeTrainingInputs()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let r = try tune(["train", "--model", model, "--data", data, "--out", out] + extra)
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "nothing may be written before validation passes")
    }

    /// Phi-3 trains from the CLI on its fused modules (PEFT's names in, PEFT's names out); naming one matrix of a
    /// fused module is refused before any work, naming the module.
    @Test func phi3TrainsOnItsFusedModules() throws {
        let (dir, _, data) = try makeTrainingInputs()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("phi3.gguf").path
        try TinyLlama.writeGGUF(to: model, config: .tinyPhi3, seed: 4, weightType: .q4_1)
        let out = dir.appendingPathComponent("out").path
        let args = ["train", "--model", model, "--data", data, "--out", out, "--qlora", "--rank", "4", "--steps", "12", "--batch", "2",
                    "--seq-len", "128", "--lr", "5e-3", "--seed", "3", "--threads", "1", "--json"]
        let r = try tune(args + ["--lora-targets", "qkv_proj,o_proj,gate_up_proj,down_proj"])
        #expect(r.status == 0, "\(r.stderr)")
        let losses = r.stdout.split(separator: "\n").compactMap { line -> Double? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["event"] as? String == "step",
                  let p = o["progress"] as? [String: Any], let rec = p["record"] as? [String: Any] else { return nil }
            return (rec["loss"] as? NSNumber)?.doubleValue
        }
        #expect(losses.count == 12 && losses.last! < losses.first!, "\(losses)")
        let st = try SafetensorsFile(path: out + "/adapter_model.safetensors")
        #expect(st.tensor(named: "base_model.model.model.layers.1.self_attn.qkv_proj.lora_B.weight")?.shape == [128, 4])
        #expect(st.tensor(named: "base_model.model.model.layers.1.mlp.gate_up_proj.lora_A.weight")?.shape == [4, 64])
        #expect(st.tensors.count == 2 * 4 * 2)
        let partial = dir.appendingPathComponent("partial").path
        let bad = try tune(Array(args.dropLast()).map { $0 == out ? partial : $0 } + ["--lora-targets", "q_proj,v_proj"])
        #expect(bad.status == 65 && bad.stderr.contains("qkv_proj"), "\(bad.status) \(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: partial))
    }
}
