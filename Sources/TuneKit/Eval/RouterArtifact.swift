// RouterArtifact — with `eval.routing`, the eval stage registers a `router` artifact beside its report:
// router.json (the routed open model, the reference it escalates to, τ, the confidence kind and the
// figures measured on the choosing and the reporting half), linked to the eval report (`measured_by`)
// and to the routed model (`local`). The reference's URL is stored redacted; its key never is (only
// the name of the environment variable that holds it). Since schema 2 it also records how the routed
// model was asked (`prompt`: the dataset's template and system prompt, the stop tokens, the choices and
// their suffix, the answer length), so `tune serve --router` (RouterRuntime) computes each request's
// confidence exactly as the eval computed each example's.

import Engine
import Foundation

/// How the eval asked the routed model, so a server can ask it the same way (router.json `prompt`).
public struct RouterPrompt: Codable, Sendable, Equatable {
    /// The prepare stage's template setting (`auto`, `none` or a template name) and system prompt.
    public var template: String
    public var systemPrompt: String?
    /// Tokens that end an answer (EOS, and the end-of-turn token every eval answer ends with).
    public var stopIDs: [Int32]
    /// `choice_margin` routers: the options, and the stop tokens scored after each (as the eval scored them).
    public var choices: [String]
    public var choiceSuffixIDs: [Int32]
    /// Greedy tokens generated per answer (`eval.max_new_tokens`).
    public var maxNewTokens: Int

    public init(template: String, systemPrompt: String?, stopIDs: [Int32], choices: [String], choiceSuffixIDs: [Int32], maxNewTokens: Int) {
        self.template = template
        self.systemPrompt = systemPrompt
        self.stopIDs = stopIDs
        self.choices = choices
        self.choiceSuffixIDs = choiceSuffixIDs
        self.maxNewTokens = maxNewTokens
    }

    enum CodingKeys: String, CodingKey {
        case template, choices
        case systemPrompt = "system_prompt", stopIDs = "stop_ids", choiceSuffixIDs = "choice_suffix_ids", maxNewTokens = "max_new_tokens"
    }

    /// What the Evaluator used for `examples` (stop set, and the stop tokens that end the first answer).
    static func measured(examples: [DatasetExample], eos: Int32?, config: EvalConfig, template: String, systemPrompt: String?) -> RouterPrompt {
        let items = Evaluator.items(examples)
        let stops = Evaluator.stopTokens(items, eos: eos)
        var answer = items.first.map { first in first.targets.map { first.ids[$0] } } ?? []
        let tail = Evaluator.stopTail(&answer, stops: stops)
        let choice = config.metrics.contains("choice") && !config.choices.isEmpty
        return RouterPrompt(template: template, systemPrompt: systemPrompt, stopIDs: stops.sorted(), choices: choice ? config.choices : [],
                            choiceSuffixIDs: choice ? tail : [], maxNewTokens: config.maxNewTokens)
    }
}

public struct RouterSpec: Codable, Sendable, Equatable {
    public static let schemaVersion = 2
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
    /// How the routed model was asked (schema 2; nil in a schema-1 router.json).
    public var prompt: RouterPrompt?

    enum CodingKeys: String, CodingKey {
        case local, reference, policy, tau, confidence, rule, met, prompt
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
                        models: [ModelRole: Artifact], prompt: RouterPrompt) throws -> Artifact {
        guard let ref = config.references.first(where: { $0.name == routing.reference }) else {
            throw TuneError(.internal, "router: reference \(routing.reference) is not in eval.reference")
        }
        let local = models[routing.local]
        var spec = RouterSpec(local: routing.local, localRef: local?.ref ?? routing.localModel, reference: ref.name, referenceModel: ref.model,
                              referenceBaseURL: ref.shownURL(environment: options.environment), apiKeyEnv: ref.apiKeyEnv,
                              policy: routing.chosenOn.policy, tau: routing.tau, confidence: routing.confidence,
                              accuracyMetric: routing.accuracyMetric, rule: routing.rule, met: routing.met,
                              chosenOn: routing.chosenOn, reportedOn: routing.reportedOn, evalReport: reportArtifact.ref)
        spec.prompt = prompt
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
