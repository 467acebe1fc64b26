// RunEventStream — how `tune run` shows a run on stderr: plain lines for a person, or with `--json` one
// JSON object per line (NDJSON) in the schema below, so the summary JSON stays alone on stdout.
// Schema (docs/pipeline.md "Progress"): every line is one `RunEventLine`; `event` is run | stage | step | eval | done.
import Foundation
import TuneKit

/// One NDJSON line. Absent fields are left out.
struct RunEventLine: Encodable {
    /// run (the run starts), stage (planned/started/finished/skipped), step (progress inside a stage, or
    /// hashing an input before one), eval (a model's evaluation progress; the report's path), done (the run ended).
    var event: String
    /// Seconds since `tune run` started.
    var t: Double
    var pipeline: String?
    var stage: String?
    /// stage: planned | started | finished | skipped; done: succeeded | failed.
    var status: String?
    /// planned: run | skip.
    var action: String?
    var reason: String?
    var outputs: [String]?
    var seconds: Double?
    /// A progress line as a person reads it (also carried by measured steps and eval events).
    var message: String?
    /// Measured progress: what (hash, prepare, merge, eval) and on what (file, or model role for eval).
    var task: String?
    var subject: String?
    /// eval: the model role (base, adapter, merged).
    var model: String?
    var done: Double?
    var total: Double?
    var unit: String?
    /// Units per second so far.
    var rate: Double?
    /// Seconds left at that rate, and the same as a person reads it (`4m10s`).
    var etaSeconds: Double?
    var eta: String?
    /// eval: the registered report's blob directory and its HTML file.
    var report: String?
    var html: String?
    /// run: the `--set` overrides; done: the error when the run failed.
    var overrides: [String]?
    var error: String?
    var dryRun: Bool?

    enum CodingKeys: String, CodingKey {
        case event, t, pipeline, stage, status, action, reason, outputs, seconds, message, task, subject, model, done, total, unit, rate
        case etaSeconds = "eta_s", eta, report, html, overrides, error, dryRun = "dry_run"
    }

    init(event: String, t: Double) {
        self.event = event
        self.t = t
    }
}

/// Writes run events to stderr as lines or NDJSON; safe to call from the progress sink.
final class RunEventStream: @unchecked Sendable { // writes serialized by `lock`
    let json: Bool
    private let start = Date()
    private let lock = NSLock()

    init(json: Bool) { self.json = json }

    var elapsed: Double { Date().timeIntervalSince(start) }

    func write(_ event: RunEvent) {
        if json { emit(Self.line(event, t: elapsed)) } else if let text = Self.text(event) { say(text) }
    }

    /// `{"event":"run",…}`: the run begins.
    func begin(pipeline: String, overrides: [String], dryRun: Bool) {
        guard json else { return }
        var l = RunEventLine(event: "run", t: elapsed)
        l.pipeline = pipeline
        l.overrides = overrides.isEmpty ? nil : overrides
        l.dryRun = dryRun
        emit(l)
    }

    /// `{"event":"done",…}`: the run ended (error: why it failed).
    func end(pipeline: String, error: String?) {
        guard json else { return }
        var l = RunEventLine(event: "done", t: elapsed)
        l.pipeline = pipeline
        l.status = error == nil ? "succeeded" : "failed"
        l.seconds = Self.finite(elapsed)
        l.error = error
        emit(l)
    }

    static func text(_ event: RunEvent) -> String? {
        switch event {
        case .planned(let s, let action, let reason): "plan  \(s.rawValue): \(action) — \(reason)"
        case .started(let s): "run   \(s.rawValue) …"
        case .finished(let s, let secs, let outs):
            "done  \(s.rawValue) in \(humanDuration(secs)) → \(outs.joined(separator: ", "))"
        case .skipped(let s, let reason, let outs): "skip  \(s.rawValue): \(reason) → \(outs.joined(separator: ", "))"
        case .progress(let s, let message): "      \(s.rawValue): \(message)"
        case .measured(let s, let p): "      \(s?.rawValue ?? p.task): \(p.text)"
        case .report(let s, let path, let html): "      \(s.rawValue): report \(path) — open \(html)"
        case .waiting(_, let message): message
        }
    }

    static func line(_ event: RunEvent, t: Double) -> RunEventLine {
        var l: RunEventLine
        switch event {
        case .planned(let s, let action, let reason):
            l = RunEventLine(event: "stage", t: t)
            l.stage = s.rawValue; l.status = "planned"; l.action = action; l.reason = reason
        case .started(let s):
            l = RunEventLine(event: "stage", t: t)
            l.stage = s.rawValue; l.status = "started"
        case .finished(let s, let secs, let outs):
            l = RunEventLine(event: "stage", t: t)
            l.stage = s.rawValue; l.status = "finished"; l.seconds = finite(secs); l.outputs = outs
        case .skipped(let s, let reason, let outs):
            l = RunEventLine(event: "stage", t: t)
            l.stage = s.rawValue; l.status = "skipped"; l.reason = reason; l.outputs = outs
        case .progress(let s, let message):
            l = RunEventLine(event: "step", t: t)
            l.stage = s.rawValue; l.message = message
        case .measured(let s, let p):
            l = RunEventLine(event: p.task == "eval" ? "eval" : "step", t: t)
            l.stage = s?.rawValue
            l.task = p.task
            if p.task == "eval" { l.model = p.subject } else { l.subject = p.subject }
            l.done = finite(p.done); l.total = p.total.flatMap(finite); l.unit = p.unit
            l.rate = p.rate.flatMap(finite); l.etaSeconds = p.eta.flatMap(finite); l.eta = p.eta.map(humanDuration)
            l.seconds = finite(p.elapsed)
            l.message = p.text
        case .report(let s, let path, let html):
            l = RunEventLine(event: "eval", t: t)
            l.stage = s.rawValue; l.report = path; l.html = html
        case .waiting(let s, let message):
            l = RunEventLine(event: "stage", t: t)
            l.stage = s.rawValue; l.status = "waiting"; l.message = message
        }
        return l
    }

    /// JSON has no NaN or infinity: such a value is left out.
    static func finite(_ v: Double) -> Double? { v.isFinite ? (v * 1000).rounded() / 1000 : nil }

    private func emit(_ l: RunEventLine) {
        var l = l
        l.t = Self.finite(l.t) ?? 0
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? enc.encode(l) else { return }
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardError.write(data + Data("\n".utf8))
    }

    private func say(_ s: String) {
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }
}
