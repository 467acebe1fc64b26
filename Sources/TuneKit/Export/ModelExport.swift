// ModelExport — `tune export REF --to llama.cpp|ollama|hf|vllm --out DIR`: what tune made (an adapter, a
// merged model, a base), written as the files the target runtime loads, with the command that serves them.
//
//   target     adapter                                         model (GGUF)               model (HF dir)
//   llama.cpp  adapter.gguf (LoRA GGUF) on the base GGUF       model.gguf                 refused (needs GGUF)
//   ollama     the same + Modelfile (FROM base, ADAPTER)       model.gguf + Modelfile     refused
//   hf         the adapter merged into the base: an HF dir     the GGUF as an HF dir      a copy
//   vllm       adapter/ (PEFT) + the base as an HF dir         as hf                      as hf
//
// `merged: true` merges an adapter into its base first and exports the model. `dtype` is the adapter GGUF's
// type (f32|f16|bf16), a model GGUF's (requantized: f16, q8_0, q4_k_m, …) or an HF directory's
// (float32|float16|bfloat16). Everything is written into a staging directory beside `out` and renamed into
// place, so a failure leaves no half-written export.
//
//     let subject = try ModelExport.resolve("my-lora@production", registry: open)
//     let r = try ModelExport.run(.init(subject: subject, target: .ollama, out: "deploy/my-lora"))
//     print(r.serve)   // ollama create my-lora -f deploy/my-lora/Modelfile && ollama run my-lora

import Engine
import Foundation

public enum ModelExport {
    public enum Target: String, CaseIterable, Sendable, Codable {
        case llamaCpp = "llama.cpp", ollama, hf, vllm
    }

    /// What is exported.
    public enum Subject: Sendable {
        case adapter(AdapterExport.Source)
        /// A GGUF file or an HF model directory (a merged model or a base).
        case model(path: String, artifact: Artifact?)

        var artifact: Artifact? {
            switch self {
            case .adapter(let s): s.artifact
            case .model(_, let a): a
            }
        }
        var path: String {
            switch self {
            case .adapter(let s): s.directory
            case .model(let p, _): p
            }
        }
    }

    public struct Request: Sendable {
        public var subject: Subject
        public var target: Target
        public var out: String
        /// The adapter's base model (GGUF or HF directory); overrides the one its record names.
        public var base: String?
        public var dtype: String?
        /// Merge an adapter into its base and export the model.
        public var merged: Bool
        /// The name the runtime serves it under (Ollama model, vLLM LoRA module); default: the artifact's.
        public var name: String?
        public var force: Bool
        public init(subject: Subject, target: Target, out: String, base: String? = nil, dtype: String? = nil,
                    merged: Bool = false, name: String? = nil, force: Bool = false) {
            self.subject = subject
            self.target = target
            self.out = out
            self.base = base
            self.dtype = dtype
            self.merged = merged
            self.name = name
            self.force = force
        }
    }

    public struct Result: Encodable, Sendable {
        public var source: String
        public var artifact: String?
        /// `adapter` or `model`: what the export holds.
        public var kind: String
        public var target: String
        public var out: String
        public var files: [String]
        public var base: String?
        public var name: String
        /// The command that serves (or loads) the export.
        public var serve: String
        public var notes: [String]
    }

    // MARK: - Resolving

    /// `ref` as a path (a PEFT adapter directory, a `.gguf`, an HF model directory, a merged-model blob
    /// directory) when one exists, else as a registry reference to an adapter, merged-model or base-model artifact.
    public static func resolve(_ ref: String, registry open: () throws -> Registry) throws -> Subject {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: ref, isDirectory: &isDir) {
            if isDir.boolValue, fm.fileExists(atPath: (ref as NSString).appendingPathComponent(LoRAAdapter.configFile)) {
                return .adapter(AdapterExport.Source(directory: ref))
            }
            let model = isDir.boolValue ? Stages.Merge.modelPath(in: ref) : ref
            guard model.hasSuffix(".gguf") || fm.fileExists(atPath: (model as NSString).appendingPathComponent("config.json")) else {
                throw TuneError(.invalidArgument, "\(ref): expected a PEFT adapter directory (adapter_config.json), a .gguf model, "
                                + "an HF model directory (config.json) or a registry reference NAME@VERSION")
            }
            return .model(path: model, artifact: nil)
        }
        let reg = try open()
        let a = try reg.resolve(ref)
        switch a.kind {
        case .adapter:
            return .adapter(try AdapterExport.resolve(ref, registry: { reg }))
        case .mergedModel, .baseModel:
            let p = try StoredArtifact.resolve(a, registry: reg).path
            if a.layout == .reference {
                switch try reg.checkReference(a) {
                case .ok: break
                case .missing: throw TuneError(.notFound, "\(a.ref): \(p) is missing")
                case .mismatch: throw TuneError(.integrity, "\(a.ref): \(p) changed since it was recorded")
                }
            }
            return .model(path: Stages.Merge.modelPath(in: p), artifact: a)
        default:
            throw TuneError(.invalidArgument, "\(a.ref) is a \(a.kind.rawValue) artifact; export takes an adapter, a merged model or a base model")
        }
    }

    // MARK: - Export

    public static func run(_ req: Request) throws -> Result {
        let fm = FileManager.default
        if fm.fileExists(atPath: req.out), !req.force {
            throw TuneError(.conflict, "\(req.out): already exists; choose a new --out or pass --force")
        }
        let parent = (req.out as NSString).deletingLastPathComponent
        let stage = ((parent.isEmpty ? "." : parent) as NSString)
            .appendingPathComponent(".\((req.out as NSString).lastPathComponent).tmp-\(UUID().uuidString.prefix(8))")
        try AtomicFile.makeDirectory(stage)
        defer { try? fm.removeItem(atPath: stage) }

        var w = Writer(req: req, stage: stage)
        try w.write()
        // Into place: an old export (--force) aside, the new one in, the old one removed.
        let aside = stage + ".old"
        if fm.fileExists(atPath: req.out) { try AtomicFile.rename(req.out, to: aside) }
        try AtomicFile.rename(stage, to: req.out)
        try? fm.removeItem(atPath: aside)
        AtomicFile.syncDirectory(parent.isEmpty ? "." : parent)
        w.result.files = ((try? fm.subpathsOfDirectory(atPath: req.out)) ?? []).filter {
            var d: ObjCBool = false
            return fm.fileExists(atPath: (req.out as NSString).appendingPathComponent($0), isDirectory: &d) && !d.boolValue
        }.sorted()
        return w.result
    }

    /// The name a runtime serves the export under: `--name`, else the artifact's or the file's stem, in the
    /// characters Ollama accepts (lower-case letters, digits, `-`, `_`, `.`; anything else becomes `-`).
    static func servedName(_ req: Request) -> String {
        let raw = req.name ?? req.subject.artifact?.name ?? {
            let last = (req.subject.path as NSString).lastPathComponent
            return last.hasSuffix(".gguf") ? String(last.dropLast(5)) : last
        }()
        let cleaned = String(raw.lowercased().map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "-" })
        return cleaned.isEmpty ? "tuned" : cleaned
    }

    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// One export in progress: files go into `stage`; paths printed are the final ones under `req.out`.
    struct Writer {
        let req: Request
        let stage: String
        var result: Result
        /// Notes of the merges/conversions this export ran (why an HF directory has no tokenizer files, …).
        var mergeNotes: [String] = []

        init(req: Request, stage: String) {
            self.req = req
            self.stage = stage
            result = Result(source: req.subject.path, artifact: req.subject.artifact?.ref, kind: "model", target: req.target.rawValue,
                            out: req.out, files: [], base: nil, name: servedName(req), serve: "", notes: [])
        }

        func staged(_ name: String) -> String { (stage as NSString).appendingPathComponent(name) }
        func final(_ name: String) -> String { (req.out as NSString).appendingPathComponent(name) }

        mutating func write() throws {
            switch req.subject {
            case .adapter(let source):
                let base = try adapterBase(source)
                result.base = base
                guard req.merged else { return try writeAdapter(source, base: base) }
                if req.target.servesGGUF {
                    let tmp = staged(".merged")
                    try merge(base: base, adapter: source.directory, to: tmp, gguf: true)
                    try AtomicFile.rename(Stages.Merge.modelPath(in: tmp), to: staged("model.gguf"))
                    try? FileManager.default.removeItem(atPath: tmp)
                    try finishGGUF()
                } else {
                    try merge(base: base, adapter: source.directory, to: stage, gguf: false)
                    try finishHF()
                }
            case .model(let path, _):
                try writeModel(path)
            }
        }

        func adapterBase(_ source: AdapterExport.Source) throws -> String {
            guard let b = req.base ?? source.base else {
                throw TuneError(.invalidArgument, "\(source.directory): an adapter export needs its base model: give --base PATH or FAMILY@VERSION")
            }
            return b
        }

        /// An adapter on its base: a LoRA GGUF (llama.cpp, Ollama), the base merged in (hf), PEFT + HF base (vLLM).
        mutating func writeAdapter(_ source: AdapterExport.Source, base: String) throws {
            result.kind = "adapter"
            switch req.target {
            case .llamaCpp, .ollama:
                guard base.hasSuffix(".gguf") else { throw needsGGUF("the base \(base) is an HF directory") }
                let dtype = req.dtype ?? "f32"
                let r = try AdapterExport.run(.init(source: source, format: .gguf, out: staged("adapter.gguf"), base: base, dtype: dtype, force: true))
                result.notes.append("adapter.gguf: rank \(r.rank), alpha \(r.alpha), \(r.tensors) tensors, \(dtype) (\(r.architecture ?? "?"))")
                let baseAbs = absolute(base)
                if req.target == .llamaCpp {
                    result.serve = "llama-server -m \(AdapterExport.shellQuoted(baseAbs)) --lora \(AdapterExport.shellQuoted(final("adapter.gguf")))"
                } else {
                    try writeModelfile(from: baseAbs, adapter: "./adapter.gguf", tokenizerOf: base)
                }
            case .hf:
                result.kind = "model"
                try merge(base: base, adapter: source.directory, to: stage, gguf: false)
                try finishHF()
            case .vllm:
                let r = try AdapterExport.run(.init(source: source, format: .peft, out: staged("adapter"), base: base, force: true))
                var isDir: ObjCBool = false
                let baseDir: String
                if FileManager.default.fileExists(atPath: base, isDirectory: &isDir), isDir.boolValue {
                    baseDir = absolute(base)
                    result.notes.append("the base is served from \(baseDir) (not copied)")
                } else {
                    try convert(base, to: staged("base"), gguf: false)
                    try requireTokenizer(staged("base"))
                    baseDir = final("base")
                    result.notes.append("base/: \(base) as an HF directory (\(dtypeHF ?? "float32"))")
                }
                var cmd = "vllm serve \(AdapterExport.shellQuoted(baseDir)) --enable-lora --lora-modules "
                    + AdapterExport.shellQuoted("\(result.name)=\(final("adapter"))")
                if r.rank > 16 { cmd += " --max-lora-rank \(vllmRank(r.rank))" }
                result.serve = cmd
            }
        }

        /// A full model: the GGUF as is (or requantized to `dtype`), or an HF directory.
        mutating func writeModel(_ path: String) throws {
            let isGGUF = path.hasSuffix(".gguf")
            switch req.target {
            case .llamaCpp, .ollama:
                guard isGGUF else { throw needsGGUF("\(path) is an HF directory") }
                let dest = staged("model.gguf")
                if let d = req.dtype {
                    let tmp = staged(".requant")
                    try convert(path, to: tmp, gguf: true)
                    try AtomicFile.rename(Stages.Merge.modelPath(in: tmp), to: dest)
                    try? FileManager.default.removeItem(atPath: tmp)
                    result.notes.append("model.gguf: \(path) requantized to \(d)")
                } else {
                    // A copy, never a hard link: the source may be a registry blob.
                    do { try FileManager.default.copyItem(atPath: path, toPath: dest) } catch { throw AtomicFile.ioError(error, dest) }
                }
                try finishGGUF()
            case .hf, .vllm:
                if isGGUF || req.dtype != nil { try convert(path, to: stage, gguf: false) } else { try copyDirectory(path, to: stage) }
                try finishHF()
            }
        }

        /// model.gguf is in place: the serve command (llama.cpp) or the Modelfile (Ollama).
        mutating func finishGGUF() throws {
            if req.target == .llamaCpp {
                result.serve = "llama-server -m \(AdapterExport.shellQuoted(final("model.gguf")))"
            } else {
                try writeModelfile(from: "./model.gguf", adapter: nil, tokenizerOf: staged("model.gguf"))
            }
        }

        /// The HF directory is in place: it must be tokenizable; the serve (vLLM) or load (transformers) line.
        mutating func finishHF() throws {
            try requireTokenizer(stage)
            result.serve = req.target == .vllm ? "vllm serve \(AdapterExport.shellQuoted(req.out))" : transformersLoad(req.out)
        }

        var dtypeHF: String? {
            guard let d = req.dtype else { return nil }
            return ["f32": "float32", "f16": "float16", "bf16": "bfloat16"][d] ?? d
        }

        /// The adapter merged into the base (linear, weight 1): a GGUF or an HF directory at `dir`.
        mutating func merge(base: String, adapter: String, to dir: String, gguf: Bool) throws {
            if gguf, !base.hasSuffix(".gguf") { throw needsGGUF("the base \(base) is an HF directory") }
            try runMerge(base: base, inputs: [.init(path: adapter)], to: dir, gguf: gguf)
        }

        /// A model re-written without change of weights (a merge with no inputs): GGUF → HF directory, or a GGUF
        /// requantized to `--dtype`.
        mutating func convert(_ model: String, to dir: String, gguf: Bool) throws {
            try runMerge(base: model, inputs: [], to: dir, gguf: gguf)
        }

        /// One linear merge into `dir`, typed by `--dtype` (GGUF names as given, HF names mapped); its notes kept.
        mutating func runMerge(base: String, inputs: [MergeSpec.Input], to dir: String, gguf: Bool) throws {
            guard let linear = MergeMethods.named("linear") else { throw TuneError(.internal, "merge method linear missing") }
            var s = MergeSpec(method: linear, base: base, inputs: inputs)
            s.output = .model
            s.format = gguf ? .gguf : .safetensors
            s.dtype = gguf ? req.dtype : dtypeHF
            mergeNotes += try MergeJob.run(s, outputDirectory: dir, overwrite: true).notes
        }

        /// An HF directory that transformers/vLLM cannot tokenize for (no tokenizer.json, nor a SentencePiece
        /// tokenizer.model) is refused, not written; the merge's note says why tune could not write one.
        func requireTokenizer(_ dir: String) throws {
            let fm = FileManager.default
            guard !["tokenizer.json", "tokenizer.model"].contains(where: { fm.fileExists(atPath: (dir as NSString).appendingPathComponent($0)) }) else { return }
            let why = mergeNotes.first { $0.contains("no tokenizer files") }
            throw TuneError(.invalidArgument, "\(req.target.rawValue) export of \(req.subject.path): the HF directory would have no tokenizer.json, "
                            + "so \(req.target == .vllm ? "vLLM" : "transformers") could not load it\(why.map { " (\($0))" } ?? "")")
        }

        mutating func writeModelfile(from: String, adapter: String?, tokenizerOf gguf: String) throws {
            let file = try GGUFFile(path: gguf)
            var lines = ["# Ollama Modelfile written by `tune export --to ollama` (\(result.artifact ?? req.subject.path))",
                         "FROM \(from)"]
            if let adapter { lines.append("ADAPTER \(adapter)") }
            let tokenizer = try BPETokenizer(ggufMetadata: file.metadata)
            if tokenizer.chatTemplate?.isEmpty ?? true {
                result.notes.append("the model has no chat template: Ollama sends prompts as they are ({{ .Prompt }})")
            } else {
                let t: OllamaTemplate
                do { t = try ChatTemplate.forModel(tokenizer).ollama() } catch let e as EngineError {
                    throw TuneError(.invalidArgument, "ollama export of \(req.subject.path): \(e.message)")
                }
                guard !t.template.contains("\"\"\"") else {
                    throw TuneError(.invalidArgument, "ollama export: the chat template contains \"\"\", which a Modelfile's TEMPLATE \"\"\"…\"\"\" cannot hold")
                }
                lines.append("TEMPLATE \"\"\"\(t.template)\"\"\"")
                var stops = t.stops
                if let eos = tokenizer.eosID.map({ tokenizer.token($0) }), !eos.isEmpty, !stops.contains(eos) { stops.append(eos) }
                for s in stops {
                    guard !s.contains("\""), !s.contains("\n") else { continue }
                    lines.append("PARAMETER stop \"\(s)\"")
                }
            }
            try AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: staged("Modelfile"))
            result.serve = "ollama create \(result.name) -f \(AdapterExport.shellQuoted(final("Modelfile"))) && ollama run \(result.name)"
        }

        func needsGGUF(_ why: String) -> TuneError {
            TuneError(.invalidArgument, "\(req.target.rawValue) serves GGUF models and \(why); convert it with llama.cpp's convert_hf_to_gguf.py "
                      + "(or export a model tune merged on a GGUF base)")
        }

        func transformersLoad(_ dir: String) -> String {
            let d = dir.replacingOccurrences(of: "'", with: "\\'")
            return "python -c \"from transformers import AutoModelForCausalLM, AutoTokenizer; "
                + "m = AutoModelForCausalLM.from_pretrained('\(d)'); t = AutoTokenizer.from_pretrained('\(d)')\""
        }

        /// vLLM's --max-lora-rank accepts 8, 16, 32, 64, 128, 256, 320, 512.
        func vllmRank(_ r: Int) -> Int { [8, 16, 32, 64, 128, 256, 320, 512].first { $0 >= r } ?? r }

        func copyDirectory(_ src: String, to dest: String) throws {
            let fm = FileManager.default
            do {
                for f in try fm.contentsOfDirectory(atPath: src) where !f.hasPrefix(".") {
                    try fm.copyItem(atPath: (src as NSString).appendingPathComponent(f), toPath: (dest as NSString).appendingPathComponent(f))
                }
            } catch { throw AtomicFile.ioError(error, dest) }
        }
    }
}

extension ModelExport.Target {
    /// Whether the runtime loads GGUF (and so a merged export should be one).
    var servesGGUF: Bool { self == .llamaCpp || self == .ollama }
}
