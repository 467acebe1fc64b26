// Sections+Schedule — the pipeline's `base:` reference forms and its `schedule:` / `notify:` sections
// (docs/schedule.md). `base: FAMILY@latest` follows the family's newest registered version; `FAMILY@V`
// pins one; anything else is a path.

import Foundation
import Yams

/// `base:` written as a registered base reference.
public struct BaseReference: Hashable, Sendable, CustomStringConvertible {
    public var family: String
    /// nil = `latest`.
    public var version: String?
    public var description: String { "\(family)@\(version ?? "latest")" }

    /// `FAMILY@latest` or `FAMILY@V` (no `/`, one `@`, both sides non-empty); nil for a path.
    public init?(_ text: String) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !text.contains("/"),
              PipelineSpec.isValidName(String(parts[0])), PipelineSpec.isValidName(String(parts[1])) else { return nil }
        family = String(parts[0])
        version = parts[1] == "latest" ? nil : String(parts[1])
    }
}

extension PipelineSpec {
    /// The base as a registry reference, when `base:` is one and not an existing file.
    public var baseReference: BaseReference? {
        guard let ref = BaseReference(base) else { return nil }
        let path = base.hasPrefix("/") ? base : (baseDirectory as NSString).appendingPathComponent(base)
        return FileManager.default.fileExists(atPath: path) ? nil : ref
    }
}

/// `schedule:` — re-run on base upgrades and/or on a cron schedule.
public struct ScheduleSection: Codable, Hashable, Sendable {
    public var onBaseUpgrade: Bool
    /// Standard 5-field cron (optionally `CRON_TZ=Zone ` first).
    public var cron: String?
    /// Cron of drift rechecks: re-evaluate production and the references on the pinned eval split (docs/governance.md, "Drift").
    public var recheck: String?
    /// IANA time zone of `cron` and `recheck` (default UTC).
    public var timeZone: String?
    /// Attempts before a job is failed for good.
    public var maxAttempts: Int

    init(_ r: YAMLReader) {
        onBaseUpgrade = r.bool("on_base_upgrade", default: false)
        cron = r.string("cron")
        recheck = r.string("recheck")
        timeZone = r.string("timezone")
        maxAttempts = r.int("max_attempts", default: 3, min: 1, max: 100)
        for (key, value) in [("cron", cron), ("recheck", recheck)] {
            guard let c = value else { continue }
            do { _ = try CronExpression(parsing: c, timeZone: timeZone) } catch let e as TuneError {
                r.report(r.value(key), key, e.message, hint: "five fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * 1\"")
            } catch {}
        }
        if cron == nil, recheck == nil, let z = timeZone, TimeZone(identifier: z) == nil {
            r.report(r.value("timezone"), "timezone", "unknown time zone \"\(z)\"")
        }
        if !onBaseUpgrade, cron == nil, recheck == nil {
            r.report(r.node, nil, "a schedule needs on_base_upgrade: true, cron: and/or recheck:",
                     hint: "schedule: {on_base_upgrade: true, cron: \"0 3 * * 1\", recheck: \"0 6 * * 1\"}")
        }
        r.finish()
    }

    /// Cross-field rules: a schedule follows a registered base family, and a pinned base never upgrades.
    static func check(_ spec: PipelineSpec, _ r: YAMLReader) {
        guard let s = spec.schedule else { return }
        guard let ref = BaseReference(spec.base) else {
            r.report(r.value("base"), "base", "a scheduled pipeline names its base as FAMILY@latest or FAMILY@VERSION, got \"\(spec.base)\"",
                     hint: "register the model with `tune base add FAMILY --version V --model \(spec.base) --license L`, then base: FAMILY@latest")
            return
        }
        if s.onBaseUpgrade, let v = ref.version {
            r.report(r.value("schedule"), "schedule.on_base_upgrade", "base \(ref.family)@\(v) is pinned, so it never upgrades",
                     hint: "base: \(ref.family)@latest")
        }
        if s.onBaseUpgrade || s.cron != nil, spec.register?.aliases.contains(Registry.productionAlias) == true {
            r.report(r.value("register"), "register.aliases", "a scheduled pipeline cannot set production itself; the scheduler moves it after comparing with production")
        }
        if spec.eval == nil || spec.prepare == nil {
            r.report(r.value("schedule"), "schedule", "a scheduled pipeline needs prepare: and eval: sections (the re-tune is compared with production on the eval split)")
        }
    }

    enum CodingKeys: String, CodingKey {
        case onBaseUpgrade = "on_base_upgrade", cron, recheck, timeZone = "timezone", maxAttempts = "max_attempts"
    }
}

/// `drift:` — when a recheck (`schedule.recheck`, `tune schedule recheck`) counts as drift: a compared metric
/// dropped by more than `max_drop` (absolute; for `loss`/`perplexity` a rise) from the last accepted eval.
public struct DriftSection: Codable, Hashable, Sendable {
    /// The largest tolerated drop, in the metric's own unit (0.02 = 2 points of accuracy).
    public var maxDrop: Double
    /// Compared metrics as written (`accuracy` resolves like a gate metric); empty: the gate's metrics, else `loss`.
    public var metrics: [String]

    public static let defaultMaxDrop = 0.02

    public init(maxDrop: Double = DriftSection.defaultMaxDrop, metrics: [String] = []) {
        self.maxDrop = maxDrop
        self.metrics = metrics
    }

    init(_ r: YAMLReader) {
        maxDrop = r.double("max_drop", default: Self.defaultMaxDrop, range: 0...1e9)
        if let v = r.value("metric"), v.sequence != nil { metrics = r.strings("metric") } else { metrics = r.string("metric").map { [$0] } ?? [] }
        r.finish()
    }

    /// The compared metrics (resolved names), for `config`.
    public func resolvedMetrics(_ config: EvalConfig) -> [String] {
        metrics.isEmpty ? ProductionGate.metrics(config) : metrics.compactMap { config.resolve(gateMetric: $0) }
    }

    /// Cross-field rules: drift compares eval metrics, so it needs `eval:` computing them; a recheck needs `eval:` and `prepare:`.
    static func check(_ spec: PipelineSpec, _ r: YAMLReader) {
        if let d = spec.drift {
            if let config = spec.eval?.config {
                for m in d.metrics where config.resolve(gateMetric: m) == nil {
                    let known = config.reportedMetrics + ["accuracy"]
                    r.report(r.value("drift"), "drift.metric", "metric \"\(m)\" is not computed by eval.metrics (computed: \(known.joined(separator: ", ")))",
                             hint: didYouMean(m, among: known).map { "did you mean \"\($0)\"?" } ?? "add it to eval.metrics")
                }
            } else {
                r.report(r.value("drift"), "drift", "drift compares eval metrics; add an eval: section")
            }
        }
    }

    enum CodingKeys: String, CodingKey { case maxDrop = "max_drop", metrics = "metric" }
}

/// `notify:` — a shell command (the JSON summary on stdin) and/or a webhook (POSTed JSON).
public struct NotifySection: Codable, Hashable, Sendable {
    public var command: String?
    public var webhook: String?

    init(_ r: YAMLReader) {
        command = r.string("command")
        webhook = r.string("webhook")
        if let w = webhook {
            let scheme = URLComponents(string: w)?.scheme?.lowercased()
            if scheme != "http" && scheme != "https" || URLComponents(string: w)?.host?.isEmpty != false {
                r.report(r.value("webhook"), "webhook", "expected an http:// or https:// URL, got \"\(w)\"")
            }
        }
        if command == nil, webhook == nil { r.report(r.node, nil, "notify needs command: and/or webhook:") }
        r.finish()
    }
}
