// The pipeline's register stage: moves the `register:` aliases onto the newest model the pipeline
// produced (the merged model, else the adapter, else the last output of any stage).

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
            for alias in section.aliases { try c.registry.setAlias(alias, to: last.id) }
            return [last]
        }

        public static func output(_ artifacts: [Artifact], registry: Registry) throws -> Artifact? { artifacts.last }
    }
}
