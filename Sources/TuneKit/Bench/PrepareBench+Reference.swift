// PrepareBench+Reference — runs HF `tokenizers` on the same texts in a Python subprocess. The
// reference tokenizer is built from the model itself (GGUF vocab + merges + control tokens with
// SmolLM2's pre-tokenizer, as in scripts/reference/tokenizer_fixtures.py; an HF dir's tokenizer.json).

import Engine
import Foundation

struct HFReference {
    var python: String
    var repeats: Int

    enum Outcome {
        case unavailable(String)
        case measured(version: String, loopSeconds: Double, batchSeconds: Double, ids: [[Int32]])
    }

    static let script = #"""
import json, sys, time
import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
spec = json.load(open(sys.argv[1]))
if spec.get("tokenizer_json"):
    tok = Tokenizer.from_file(spec["tokenizer_json"])
else:
    toks = spec["tokens"]
    merges = [tuple(m.split(" ", 1)) for m in spec["merges"]]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(toks)}, merges=merges, unk_token=None,
                               fuse_unk=False, byte_fallback=False))
    pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if spec["split_digits"]:
        pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(pre)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(toks[i], special=True, normalized=False) for i in spec["specials"]])
texts = spec["texts"]
loop = batch = float("inf")
for _ in range(spec["repeats"]):
    t0 = time.perf_counter()
    ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    loop = min(loop, time.perf_counter() - t0)
    t0 = time.perf_counter()
    tok.encode_batch(texts, add_special_tokens=False)
    batch = min(batch, time.perf_counter() - t0)
json.dump({"version": tokenizers.__version__, "loop": loop, "batch": batch, "ids": ids}, open(sys.argv[2], "w"))
"""#

    func run(modelPath: String, texts: [String], work: String) throws -> Outcome {
        guard (try? execute(["-c", "import tokenizers"]))?.0 == 0 else {
            return .unavailable("reference: HF tokenizers not installed (\(python) -c \"import tokenizers\" failed)")
        }
        var spec: [String: Any] = ["texts": texts, "repeats": repeats]
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: modelPath, isDirectory: &isDir), isDir.boolValue {
            spec["tokenizer_json"] = (modelPath as NSString).appendingPathComponent("tokenizer.json")
        } else {
            let meta = try GGUFFile(path: modelPath).metadata
            let pre = meta["tokenizer.ggml.pre"]?.stringValue ?? ""
            guard pre == "smollm" || pre == "gpt-2" else {
                return .unavailable("reference: the \(pre) pre-tokenizer is not rebuilt for HF tokenizers (smollm, gpt-2 are)")
            }
            spec["tokens"] = (meta["tokenizer.ggml.tokens"]?.arrayValue ?? []).map { $0.stringValue ?? "" }
            spec["merges"] = (meta["tokenizer.ggml.merges"]?.arrayValue ?? []).map { $0.stringValue ?? "" }
            let types = (meta["tokenizer.ggml.token_type"]?.arrayValue ?? []).map { $0.intValue ?? 1 }
            spec["specials"] = types.indices.filter { types[$0] == 3 }
            spec["split_digits"] = pre == "smollm"
        }
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let specPath = (work as NSString).appendingPathComponent("hf-spec.json")
        let outPath = (work as NSString).appendingPathComponent("hf-out.json")
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: specPath))
        let (status, err) = try execute(["-c", Self.script, specPath, outPath])
        guard status == 0, let data = FileManager.default.contents(atPath: outPath),
              let out = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let loop = out["loop"] as? Double, let batch = out["batch"] as? Double,
              let ids = out["ids"] as? [[Int]] else {
            return .unavailable("reference: the HF tokenizers script failed (exit \(status)): \(err.split(separator: "\n").last ?? "")")
        }
        return .measured(version: out["version"] as? String ?? "?", loopSeconds: loop, batchSeconds: batch,
                         ids: ids.map { $0.map { Int32($0) } })
    }

    /// Runs the interpreter with `args`; returns its exit status and stderr.
    private func execute(_ args: [String]) throws -> (Int32, String) {
        let r = try ProcessRunner.run(python, args)
        return (r.status, r.stderr)
    }
}
