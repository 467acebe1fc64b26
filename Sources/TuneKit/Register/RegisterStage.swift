// The pipeline's register stage: moves the `register:` aliases onto the newest model the pipeline
// produced (the merged model, else the adapter, else the last output of any stage), and onto the
// router the eval registered for it (`PIPELINE-router@staging` answers through the staged model).

import Foundation

extension StageKind {
    public static let register = StageKind(known: "register")
}

extension PipelineSpec {
    /// `register:`
    public var register: RegisterSection? {
        get { section(Stages.Register.self) }
        set { setSection(Stages.Register.self, newValue) }
    }
}

extension RegisterSection: StageSection {}

extension Stages {
    public enum Register: Stage {
        public static let kind = StageKind.register
        public static let outputSuffix = "registered"

        public static func readSection(_ r: YAMLReader) -> RegisterSection { RegisterSection(r) }

        public static func run(_ section: RegisterSection, _ c: StageContext) throws -> [Artifact] {
            let o = c.outputs
            guard let last = o.of(Merge.self)?.artifact ?? o.of(Train.self)?.artifact ?? o.all.last else {
                throw TuneError(.invalidArgument, "\(c.spec.name): register has nothing to register (no earlier stage produced an artifact)")
            }
            guard let name = section.name else {
                // No registered name: the aliases go on the produced artifact itself (its license and notes were
                // recorded when it was made, from this section).
                for alias in section.aliases { try c.registry.setAlias(alias, to: last.id) }
                try aliasRouter(section, c)
                return [last]
            }
            // `name:` — MLflow's registered model: a new version of NAME with the produced artifact's content (the
            // same blob, not copied), derived from it (role `registered`); the aliases go on that version. A
            // version registered by an interrupted run of this stage (same cache key) is reused.
            let registered = try c.registry.list(name: name).first { $0.metadata["cache_key"] == .string(c.key) }
                ?? c.registry.registerVersion(of: last, as: name, metadata: metadata(section, last, c), governance: governance(section, last),
                                              run: c.run)
            for alias in section.aliases { try c.registry.setAlias(alias, to: registered.id) }
            try aliasRouter(section, c)
            return [registered]
        }

        /// The aliases also go on the router this run's eval registered (routers are served by alias:
        /// `tune serve --router PIPELINE-router@staging`).
        static func aliasRouter(_ section: RegisterSection, _ c: StageContext) throws {
            guard let router = c.outputs.all.last(where: { $0.kind == .router }) else { return }
            for alias in section.aliases { try c.registry.setAlias(alias, to: router.id) }
        }

        static func metadata(_ section: RegisterSection, _ source: Artifact, _ c: StageContext) -> [String: JSONValue] {
            var meta: [String: JSONValue] = ["pipeline": .string(c.spec.name), "cache_key": .string(c.key), "registered_from": .string(source.ref)]
            if let n = section.notes { meta["notes"] = .string(n) }
            for k in ["backend", "fine_tuned_model", "base_url", "model"] { if let v = source.metadata[k] { meta[k] = v } }
            return meta
        }

        /// The source's base and data governance; license `register.license`, else the source's (the base's).
        static func governance(_ section: RegisterSection, _ source: Artifact) -> Governance {
            var g = source.governance
            g.license = section.license ?? g.license
            g.createdBy = Governance.currentUser
            g.createdWith = "tune \(TuneKitInfo.version) run register"
            return g
        }

        public static func output(_ artifacts: [Artifact], registry: Registry) throws -> Artifact? { artifacts.last }
    }
}
