// BaseCatalog — registering base model versions: where the model is (a local path or file:// URL;
// no network fetch), that it hashes to what the caller expects, that tune can read and train it, and
// that every scheduled pipeline following the family can train on it. A refused base records nothing,
// so nothing is enqueued for it.
//
//     let added = try BaseCatalog.add(BaseCatalog.Request(family: "smollm2", version: "2", model: "models/v2.gguf",
//                                                         license: "apache-2.0"), to: registry)

import Engine
import Foundation

public enum BaseCatalog {
    public struct Request: Sendable {
        public var family: String
        public var version: String
        /// A path or a `file://` URL.
        public var model: String
        public var license: String
        public var notes: String?
        /// Expected sha256 (hex); registration fails when the file hashes otherwise.
        public var sha256: String?
        public var createdBy = Governance.currentUser

        public init(family: String, version: String, model: String, license: String, notes: String? = nil, sha256: String? = nil) {
            self.family = family; self.version = version; self.model = model
            self.license = license; self.notes = notes; self.sha256 = sha256
        }
    }

    /// What `add` did.
    public struct Added: Codable, Sendable {
        public var base: BaseModel
        /// The version it follows, when the family had one.
        public var previous: String?
        /// Same architecture, hidden size and layer count as the previous version: adapters have the same shapes.
        public var sameShape: Bool?
        /// Scheduled pipelines that follow this family (their re-tunes are enqueued by the next tick).
        public var pipelines: [String]
        enum CodingKeys: String, CodingKey { case base, previous, pipelines, sameShape = "same_shape" }
    }

    /// Architectures tune can train (LoRA / QLoRA through the Engine's model description).
    public static let trainableArchitectures = ModelArchitecture.allCases.map(\.rawValue)

    public static func add(_ req: Request, to registry: Registry) throws -> Added {
        guard PipelineSpec.isValidName(req.family), req.family != "latest" else {
            throw TuneError(.invalidArgument, "base family \"\(req.family)\": expected letters, digits, '.', '_' or '-'")
        }
        guard PipelineSpec.isValidName(req.version), req.version != "latest" else {
            throw TuneError(.invalidArgument, "base version \"\(req.version)\": expected letters, digits, '.', '_' or '-' (and not \"latest\")")
        }
        guard !req.license.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw TuneError(.invalidArgument, "--license: a base model needs a license identifier (e.g. apache-2.0)")
        }
        let path = try localPath(req.model)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TuneError(.fileAccess, "\(path): no such model file or directory")
        }
        guard FileManager.default.isReadableFile(atPath: path) else { throw TuneError(.fileAccess, "\(path): model is not readable") }
        let shape = try inspect(path, isDirectory: isDir.boolValue)
        let digest = try contentSHA256(path, isDirectory: isDir.boolValue)
        if let want = req.sha256?.lowercased(), want != digest {
            throw TuneError(.integrity, "\(path): sha256 is \(digest), expected \(want) (--sha256); nothing registered")
        }
        let size = isDir.boolValue ? 0 : Int64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)??.int64Value ?? 0)
        var base = BaseModel(family: req.family, version: req.version, seq: 0, path: path, sha256: digest, size: size,
                             format: isDir.boolValue ? "huggingface" : "gguf", architecture: shape.arch,
                             hiddenSize: shape.config.hiddenSize, numLayers: shape.config.numLayers, vocabSize: shape.config.vocabSize,
                             license: req.license, notes: req.notes, createdBy: req.createdBy, createdAt: "")
        // Every scheduled pipeline of this family must be able to train on the new version.
        let schedules = try registry.schedules().filter { $0.baseFamily == req.family }
        var problems: [String] = []
        for s in schedules {
            do {
                let spec = try PipelineSpec.load(path: s.specPath)
                if let t = spec.train { _ = try Stages.Train.trainingOptions(t, spec: spec, model: shape.config) }
            } catch let e as TuneError { problems.append("\(s.pipeline): \(e.message)") } catch { problems.append("\(s.pipeline): \(error)") }
        }
        guard problems.isEmpty else {
            throw TuneError(.invalidArgument, "\(req.family)@\(req.version) (\(path)) is incompatible with scheduled pipelines: \(problems.joined(separator: "; ")); nothing registered")
        }
        return try registry.write { db in
            let prev = try? registry.base(db, family: req.family, version: nil)
            base = try registry.insertBase(db, base)
            return Added(base: base, previous: prev?.version,
                         sameShape: prev.map { $0.architecture == base.architecture && $0.hiddenSize == base.hiddenSize && $0.numLayers == base.numLayers },
                         pipelines: schedules.map(\.pipeline))
        }
    }

    /// A path from `PATH` or `file://PATH`; any other URL scheme is refused (tune fetches nothing over the network).
    static func localPath(_ model: String) throws -> String {
        if let scheme = model.range(of: "://").map({ String(model[..<$0.lowerBound]).lowercased() }) {
            guard scheme == "file", let url = URL(string: model), url.isFileURL else {
                throw TuneError(.invalidArgument, "--model \(redactedURL(model)): \(scheme):// is not supported: tune does no network fetch; download the model and pass its path or a file:// URL")
            }
            return url.standardized.path
        }
        return URL(fileURLWithPath: model).standardized.path
    }

    /// The architecture and hyperparameters, read from the header; refuses what tune cannot train.
    static func inspect(_ path: String, isDirectory: Bool) throws -> (arch: String, config: LlamaConfig) {
        do {
            if !isDirectory {
                let file = try GGUFFile(path: path)
                let arch = file.metadata["general.architecture"]?.stringValue ?? "(none)"
                guard trainableArchitectures.contains(arch) else {
                    throw TuneError(.invalidArgument, "\(path): architecture '\(arch)' cannot be trained by tune (supported: \(trainableArchitectures.joined(separator: ", "))); nothing registered")
                }
                return (arch, try LlamaConfig(gguf: file))
            }
            let config = try HFModelDirectory(path: path).config
            return (config.architecture.rawValue, config)
        } catch let e as EngineError {
            throw TuneError(.badData, "\(path): not a model tune can read: \(e.message); nothing registered")
        }
    }

    /// The base's path after checking it still hashes to the registered sha256 (memoized by size+mtime+inode).
    public static func verifiedPath(_ b: BaseModel, hashes: FileHashCache? = nil) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: b.path, isDirectory: &isDir) else {
            throw TuneError(.fileAccess, "base \(b.ref): \(b.path) is missing")
        }
        let actual = isDir.boolValue ? try contentSHA256(b.path, isDirectory: true)
                                     : try (hashes?.sha256(b.path) ?? SHA256.hashFile(b.path))
        guard actual == b.sha256 else {
            throw TuneError(.integrity, "base \(b.ref): \(b.path) now hashes to \(actual), registered as \(b.sha256); the file changed since `tune base add`")
        }
        return b.path
    }
}
