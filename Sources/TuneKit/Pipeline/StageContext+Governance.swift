// StageContext+Governance — what the stages record so compliance questions have answers
// (docs/governance.md): the base model as a `base-model` artifact, a managed provider's model as a
// `managed-model` artifact (Registry+Models.swift), and the governance fields of the models a stage produces.

import Engine
import Foundation

extension StageContext {
    /// The run's base model as a `base-model` artifact (Registry.baseModelArtifact): family, version and license
    /// of the registered base (`base: FAMILY@VERSION`) when there is one, else the model's metadata; `register.license`
    /// when neither names a license.
    public func baseArtifact() throws -> Artifact {
        let path = basePath
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TuneError(.notFound, "\(path): base model not found")
        }
        let (sha, size): (String, Int64)
        if isDir.boolValue {
            (sha, size) = try Registry.baseModelDigest(path, isDirectory: true)
        } else {
            sha = try plan.sha256(path)
            size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        }
        var license: String? = nil
        if let f = options.base?.family, let v = options.base?.version, let b = try? registry.base(family: f, version: v) { license = b.license }
        let info = BaseModelInfo.read(path, isDirectory: isDir.boolValue)
        return try registry.write { db in
            try registry.baseModelArtifact(db, path: path, info: info, sha256: sha, size: size, family: options.base?.family,
                                           version: options.base?.version, license: license, fallbackLicense: spec.register?.license,
                                           createdWith: createdWith)
        }
    }

    /// `created_with` of the records a stage makes.
    var createdWith: String { "tune \(TuneKitInfo.version) run \(run) \(kind.rawValue)" }

    /// Governance of a model made from `base`: its family and version; license `register.license`, else the base's.
    public func modelGovernance(base: Artifact) -> Governance {
        Governance(baseFamily: base.governance.baseFamily, baseVersion: base.governance.baseVersion,
                   license: spec.register?.license ?? base.governance.license)
    }

    /// The provider's model trained on (`train.openai.model`) or compared with (`eval.reference`) as a `managed-model` artifact.
    func managedModelArtifact(model: String, provider: String) throws -> Artifact {
        try registry.managedModelArtifact(model: model, provider: provider, createdWith: createdWith)
    }
}
