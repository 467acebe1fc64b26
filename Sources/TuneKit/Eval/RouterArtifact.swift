// RouterArtifact — with `eval.routing`, the eval stage registers a `router` artifact beside its report:
// router.json (the routed open model, the reference it escalates to, τ, the confidence kind and the
// figures measured on the choosing and the reporting half), linked to the eval report (`measured_by`)
// and to the routed model (`local`). The reference's URL is stored redacted; its key never is (only
// the name of the environment variable that holds it).

import Foundation

public struct RouterSpec: Codable, Sendable, Equatable {
    public static let schemaVersion = 1
    public var schemaVersion = RouterSpec.schemaVersion
    /// The routed open model: its role in the eval and its registry ref.
    public var local: ModelRole
    public var localRef: String
    public var reference: String
    public var referenceModel: String
    public var referenceBaseURL: String
    public var apiKeyEnv: String
    public var policy: RoutingPoint.Policy
    public var tau: Double?
    public var confidence: String
    public var accuracyMetric: String
    public var rule: String
    public var met: Bool
    public var chosenOn: RoutingPoint
    public var reportedOn: RoutingPoint
    public var evalReport: String

    enum CodingKeys: String, CodingKey {
        case local, reference, policy, tau, confidence, rule, met
        case schemaVersion = "schema_version", localRef = "local_ref", referenceModel = "reference_model"
        case referenceBaseURL = "reference_base_url", apiKeyEnv = "api_key_env", accuracyMetric = "accuracy_metric"
        case chosenOn = "chosen_on", reportedOn = "reported_on", evalReport = "eval_report"
    }

    /// Registry metadata: the spec's scalars and the headline numbers of both halves.
    public var metadata: [String: JSONValue] {
        var m: [String: JSONValue] = [
            "local": .string(local.rawValue), "local_ref": .string(localRef), "reference": .string(reference),
            "reference_model": .string(referenceModel), "reference_base_url": .string(referenceBaseURL),
            "policy": .string(policy.rawValue), "confidence": .string(confidence), "accuracy_metric": .string(accuracyMetric),
            "rule": .string(rule), "met": .bool(met), "eval_report": .string(evalReport),
        ]
        if let tau { m["tau"] = .number(tau) }
        for (prefix, p) in [("chosen_on_", chosenOn), ("reported_on_", reportedOn)] {
            m[prefix + "examples"] = .number(Double(p.examples))
            m[prefix + "accuracy"] = .number(p.accuracy)
            m[prefix + "escalation_rate"] = .number(p.escalationRate)
            if let ci = p.accuracyCI95 { m[prefix + "accuracy_lower"] = .number(ci.lower); m[prefix + "accuracy_upper"] = .number(ci.upper) }
            if let c = p.costPer1k { m[prefix + "cost_per_1k"] = .number(c) }
            if let c = p.costPerCorrect { m[prefix + "cost_per_correct"] = .number(c) }
        }
        return m
    }
}

extension StageContext {
    /// Registers `PIPELINE-router` for `routing` (measured in `report`, registered as `reportArtifact`); `models`
    /// maps the evaluated roles to their artifacts (the routed one becomes the `local` input).
    func registerRouter(_ routing: RoutingReport, config: EvalConfig, report reportArtifact: Artifact,
                        models: [ModelRole: Artifact]) throws -> Artifact {
        guard let ref = config.references.first(where: { $0.name == routing.reference }) else {
            throw TuneError(.internal, "router: reference \(routing.reference) is not in eval.reference")
        }
        let local = models[routing.local]
        let spec = RouterSpec(local: routing.local, localRef: local?.ref ?? routing.localModel, reference: ref.name, referenceModel: ref.model,
                              referenceBaseURL: ref.shownURL(environment: options.environment), apiKeyEnv: ref.apiKeyEnv,
                              policy: routing.chosenOn.policy, tau: routing.tau, confidence: routing.confidence,
                              accuracyMetric: routing.accuracyMetric, rule: routing.rule, met: routing.met,
                              chosenOn: routing.chosenOn, reportedOn: routing.reportedOn, evalReport: reportArtifact.ref)
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-router-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("router.json")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try enc.encode(spec).write(to: file, options: .atomic)
        var meta = spec.metadata
        meta["pipeline"] = .string(self.spec.name)
        var inputs: [ArtifactID: String] = [reportArtifact.id: "measured_by"]
        if let local { inputs[local.id] = "local" }
        return try registry.register(NewArtifact(kind: .router, name: "\(self.spec.name)-router", source: file, metadata: meta),
                                     inputs: inputs, run: run)
    }
}
