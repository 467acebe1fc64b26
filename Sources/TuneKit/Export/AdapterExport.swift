// AdapterExport — a LoRA adapter (a registered `adapter` artifact or a PEFT directory) written out for
// another runtime: `gguf` is llama.cpp's LoRA GGUF (`llama-server -m BASE.gguf --lora OUT.gguf`, see
// LoRAAdapter+GGUF), `peft` the PEFT directory itself. A GGUF needs the base model: its architecture goes
// into the file (llama.cpp refuses a mismatch) and its shapes check the adapter. The base is `--base` (a
// model path or a registered FAMILY@VERSION), else the one the adapter's registry record names.
//
//     let r = try AdapterExport.run(.init(source: dir, format: .gguf, out: "a.gguf", base: "models/base.gguf"))
//     print(r.serve!)   // llama-server -m models/base.gguf --lora a.gguf

import Engine
import Foundation

public enum AdapterExport {
    public enum Format: String, CaseIterable, Sendable, Codable {
        case gguf, peft
    }

    /// Where the adapter comes from, resolved: its PEFT directory, and the registry record when it has one.
    public struct Source: Sendable {
        public var directory: String
        public var artifact: Artifact?
        /// The base model path the registry record names (nil for a plain directory).
        public var base: String?
        public init(directory: String, artifact: Artifact? = nil, base: String? = nil) {
            self.directory = directory
            self.artifact = artifact
            self.base = base
        }
    }

    public struct Request: Sendable {
        public var source: Source
        public var format: Format
        public var out: String
        /// Base model path (GGUF or HF directory); overrides `source.base`.
        public var base: String?
        /// GGUF tensor type: f32 (llama.cpp converter's default), f16 or bf16.
        public var dtype: String
        /// Replace an existing `out`.
        public var force: Bool
        /// general.name of a GGUF; default: the artifact's name or the directory's.
        public var name: String?
        public init(source: Source, format: Format, out: String, base: String? = nil, dtype: String = "f32", force: Bool = false,
                    name: String? = nil) {
            self.source = source
            self.format = format
            self.out = out
            self.base = base
            self.dtype = dtype
            self.force = force
            self.name = name
        }
    }

    public struct Result: Encodable, Sendable {
        public var adapter: String
        public var artifact: String?
        public var format: String
        public var out: String
        public var base: String?
        public var architecture: String?
        public var rank: Int
        public var alpha: Double
        public var tensors: Int
        public var dtype: String?
        /// The llama.cpp command that serves the GGUF adapter on its base (gguf only).
        public var serve: String?
        enum CodingKeys: String, CodingKey {
            case adapter, artifact, format, out, base, architecture, rank, alpha, tensors, dtype, serve
        }
    }

    // MARK: - Resolving

    /// `ref` as a PEFT directory when one exists at that path, else as a registry reference to an
    /// `adapter` artifact (`NAME`, `NAME@3`, `NAME@alias`, `sha256:…`) in the registry `open` returns.
    public static func resolve(_ ref: String, registry open: () throws -> Registry) throws -> Source {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: ref, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw TuneError(.invalidArgument, "\(ref): is a file; expected a PEFT adapter directory or a registry reference NAME@VERSION")
            }
            return Source(directory: ref)
        }
        let reg = try open()
        let a = try reg.resolve(ref)
        guard a.kind == .adapter else {
            throw TuneError(.invalidArgument, "\(a.ref) is a \(a.kind.rawValue) artifact, not an adapter")
        }
        guard let dir = reg.path(of: a) else {
            throw TuneError(.notFound, "\(a.ref): the blob store has no local path; `tune artifacts export \(a.ref) --out DIR` first and export that directory")
        }
        return Source(directory: dir, artifact: a, base: try basePath(of: a, registry: reg))
    }

    /// The base model a registered adapter runs on: the registered base version its record names (hash
    /// checked), else the `base-model` artifact in its lineage (recorded by reference; re-hashed here); nil
    /// when the record names neither.
    public static func basePath(of a: Artifact, registry: Registry) throws -> String? {
        if let f = a.governance.baseFamily, let v = a.governance.baseVersion,
           let b = try? registry.base(family: f, version: v) {
            return try BaseCatalog.verifiedPath(b)
        }
        if let b = try registry.lineage(of: a.id).ancestors.last(where: { $0.kind == .baseModel }), let p = registry.path(of: b) {
            guard b.layout == .reference else { return p }
            switch try registry.checkReference(b) {
            case .ok: return p
            case .missing: throw TuneError(.notFound, "\(b.ref) (the base of \(a.ref)): \(p) is missing")
            case .mismatch: throw TuneError(.integrity, "\(b.ref) (the base of \(a.ref)): \(p) changed since it was recorded")
            }
        }
        return nil
    }

    /// `--base`: an existing model path as is, else a registered base FAMILY@VERSION (hash checked).
    public static func resolveBase(_ text: String, registry open: () throws -> Registry) throws -> String {
        if FileManager.default.fileExists(atPath: text) { return text }
        guard text.contains("@") else { throw TuneError(.notFound, "--base \(text): no such file or directory") }
        let ref = try BaseRef(parsing: text)
        return try BaseCatalog.verifiedPath(try open().base(family: ref.family, version: ref.version))
    }

    // MARK: - Export

    public static func run(_ req: Request) throws -> Result {
        let src = req.source
        let name = req.name ?? src.artifact?.name ?? (URL(fileURLWithPath: src.directory).standardizedFileURL.lastPathComponent)
        let basePath = req.base ?? src.base
        if FileManager.default.fileExists(atPath: req.out), !req.force {
            throw TuneError(.conflict, "\(req.out): already exists; choose a new path or pass --force")
        }
        switch req.format {
        case .gguf:
            guard let basePath else {
                throw TuneError(.invalidArgument, "a GGUF adapter needs its base model (architecture and shapes): give --base PATH or FAMILY@VERSION")
            }
            guard let type = LoRAAdapter.ggufLoRATypes.first(where: { $0.name == req.dtype }) else {
                throw TuneError(.invalidArgument, "--dtype '\(req.dtype)': expected one of \(LoRAAdapter.ggufLoRATypes.map(\.name).joined(separator: ", "))")
            }
            let config = try baseConfig(basePath)
            try LoRAAdapter.checkGGUFLoRA(architecture: config.architecture)
            let adapter = try LoRAAdapter.load(directory: src.directory, model: config)
            try adapter.writeGGUF(to: req.out, type: type, name: name)
            let model = basePath.hasSuffix(".gguf") ? basePath : "BASE.gguf"
            return Result(adapter: src.directory, artifact: src.artifact?.ref, format: "gguf", out: req.out, base: basePath,
                          architecture: config.architecture.rawValue, rank: adapter.rank, alpha: adapter.config.alpha,
                          tensors: 2 * adapter.slots.count, dtype: type.name,
                          serve: "llama-server -m \(shellQuoted(model)) --lora \(shellQuoted(req.out))")
        case .peft:
            // Check what is copied loads as a PEFT adapter (against the base's shapes when it is known).
            let adapter: LoRAAdapter? = try basePath.map { try LoRAAdapter.load(directory: src.directory, model: try baseConfig($0)) }
            let (rank, alpha, tensors) = try adapter.map { ($0.rank, $0.config.alpha, 2 * $0.slots.count) } ?? peftSummary(src.directory)
            try copyPEFT(from: src.directory, to: req.out, replacing: req.force)
            return Result(adapter: src.directory, artifact: src.artifact?.ref, format: "peft", out: req.out, base: basePath,
                          architecture: adapter?.modelConfig.architecture.rawValue, rank: rank, alpha: alpha, tensors: tensors,
                          dtype: nil, serve: nil)
        }
    }

    /// The base's shapes and architecture, read from its metadata (GGUF) or config.json (HF directory: the
    /// config alone is enough, as for llama.cpp's converter); no weights are loaded.
    static func baseConfig(_ path: String) throws -> LlamaConfig {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TuneError(.notFound, "base model \(path): no such file or directory")
        }
        return isDir.boolValue ? try HFModelDirectory.readConfig(directory: path) : try LlamaConfig(gguf: GGUFFile(path: path))
    }

    /// r, lora_alpha and the tensor count of a PEFT directory without a base to load it against.
    static func peftSummary(_ dir: String) throws -> (Int, Double, Int) {
        let cfgPath = (dir as NSString).appendingPathComponent(LoRAAdapter.configFile)
        guard let data = FileManager.default.contents(atPath: cfgPath),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TuneError(.badData, "\(cfgPath): cannot read a JSON object (is \(dir) a PEFT adapter directory?)")
        }
        guard let r = json["r"] as? Int, let alpha = (json["lora_alpha"] as? NSNumber)?.doubleValue else {
            throw TuneError(.badData, "\(cfgPath): expected integer 'r' and numeric 'lora_alpha'")
        }
        let st = try SafetensorsFile(path: (dir as NSString).appendingPathComponent(LoRAAdapter.weightsFile))
        return (r, alpha, st.tensors.count)
    }

    /// `adapter_config.json` and `adapter_model.safetensors` into a new directory, via a temp directory
    /// beside it renamed into place (a crash leaves no half-written adapter under `out`). `replacing`
    /// removes an existing `out` just before the rename. (The GGUF writer's rename replaces a file itself.)
    static func copyPEFT(from dir: String, to out: String, replacing: Bool) throws {
        let fm = FileManager.default
        let parent = (out as NSString).deletingLastPathComponent
        let tmp = (parent.isEmpty ? "." : parent) + "/.\((out as NSString).lastPathComponent).tmp-\(UUID().uuidString)"
        do {
            try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            for f in [LoRAAdapter.configFile, LoRAAdapter.weightsFile] {
                try fm.copyItem(atPath: (dir as NSString).appendingPathComponent(f), toPath: (tmp as NSString).appendingPathComponent(f))
            }
            if replacing, fm.fileExists(atPath: out) { try fm.removeItem(atPath: out) }
            try fm.moveItem(atPath: tmp, toPath: out)
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw TuneError(.io, "\(out): cannot copy the PEFT adapter from \(dir) (\(error.localizedDescription))")
        }
    }

    static func shellQuoted(_ s: String) -> String {
        s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=:@".contains($0) } ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
