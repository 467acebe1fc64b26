// FakeProvider — an OpenAI-compatible fine-tuning provider played on a LoopbackServer, for tests:
// files, jobs (each GET of a job moves it one status on: validating_files → queued → running →
// succeeded, or failed when `failWith` is set), events (newest first, metrics events while running),
// checkpoints, cancel, and chat completions answered by `answer`. Faults are injected per route
// ("POST /v1/fine_tuning/jobs") as a queue of actions served before the normal behaviour.
import Foundation

public final class FakeProvider: @unchecked Sendable {
    private let lock = NSLock()
    private var files: [String: Data] = [:]
    private var jobs: [[String: Any]] = []          // newest last
    private var events: [String: [[String: Any]]] = [:]
    private var faults: [String: [LoopbackAction]] = [:]
    private var counter = 0
    /// Statuses a job walks through, one per GET.
    public var statuses = ["validating_files", "queued", "running", "succeeded"]
    /// When set, the job ends `failed` with this message instead of succeeding.
    public var failWith: String?
    /// The assistant's answer to a chat (the messages as role/content pairs).
    public var answer: @Sendable ([[String: String]]) -> String = { _ in "ok" }
    /// A scripted chat completion, by requested model and messages: its text and the `usage` it reports.
    /// When set it replaces `answer` (whose usage is always 10 prompt + 2 completion tokens).
    public var chat: (@Sendable (_ model: String, _ messages: [[String: String]]) -> (text: String, promptTokens: Int, completionTokens: Int))?
    /// The models chat completions were asked of, in arrival order.
    public private(set) var chatModels: [String] = []
    /// This many job creations succeed at the provider but their reply is lost (connection dropped).
    public var dropCreateReplies = 0
    /// The key every request must present (`Authorization: Bearer …`); nil accepts any.
    public var requiredKey: String?
    public private(set) var server: LoopbackServer!

    public init(lifetime: Double = 120) throws {
        server = try LoopbackServer(lifetime: lifetime) { [unowned self] r in self.handle(r) }
    }

    public var url: String { server.url }

    public func inject(_ route: String, _ actions: [LoopbackAction]) { lock.lock(); faults[route, default: []] += actions; lock.unlock() }

    /// The uploaded files' contents, in upload order of id.
    public var uploads: [Data] { lock.lock(); defer { lock.unlock() }; return files.sorted { $0.key < $1.key }.map(\.value) }
    public var jobCount: Int { lock.lock(); defer { lock.unlock() }; return jobs.count }

    /// Adds a job as if created earlier (e.g. by another run).
    public func seedJob(status: String, metadata: [String: String], model: String = "ft:seeded") {
        lock.lock(); defer { lock.unlock() }
        counter += 1
        jobs.append(["id": "ftjob-seed\(counter)", "object": "fine_tuning.job", "model": "base", "status": status,
                     "fine_tuned_model": status == "succeeded" ? model : NSNull(), "metadata": metadata, "created_at": counter,
                     "training_file": "file-x", "result_files": [String](), "_step": statuses.firstIndex(of: status) ?? 0])
    }

    // MARK: - Routing

    private func handle(_ r: LoopbackRequest) -> LoopbackAction {
        lock.lock(); defer { lock.unlock() }
        let route = "\(r.method) \(r.path)"
        if var q = faults[route], !q.isEmpty {
            let a = q.removeFirst()
            faults[route] = q
            return a
        }
        if let k = requiredKey, r.headers["authorization"] != "Bearer \(k)" {
            return .json(401, #"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#)
        }
        let parts = r.path.split(separator: "/").map(String.init)   // ["v1", "fine_tuning", "jobs", id, …]
        switch (r.method, parts) {
        case ("POST", ["v1", "files"]):
            counter += 1
            let id = String(format: "file-%04d", counter)
            files[id] = r.body
            return ok(["id": id, "object": "file", "bytes": r.body.count, "purpose": "fine-tune", "filename": "upload.jsonl"])
        case ("POST", ["v1", "fine_tuning", "jobs"]):
            guard let body = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any], let model = body["model"] as? String,
                  let file = body["training_file"] as? String else {
                return .json(400, #"{"error":{"message":"model and training_file are required","type":"invalid_request_error"}}"#)
            }
            guard files[file] != nil else {
                return .json(400, #"{"error":{"message":"invalid training_file: \#(file)","type":"invalid_request_error","param":"training_file"}}"#)
            }
            counter += 1
            let id = "ftjob-\(counter)"
            var job: [String: Any] = ["id": id, "object": "fine_tuning.job", "model": model, "status": statuses[0], "created_at": counter,
                                      "training_file": file, "metadata": body["metadata"] ?? NSNull(), "fine_tuned_model": NSNull(),
                                      "result_files": [String](), "hyperparameters": body["hyperparameters"] ?? NSNull(), "_step": 0]
            if let v = body["validation_file"] { job["validation_file"] = v }
            jobs.append(job)
            addEvent(id, "Created fine-tuning job: \(id)", nil)
            if dropCreateReplies > 0 { dropCreateReplies -= 1; return .drop }
            return ok(job)
        case ("GET", ["v1", "fine_tuning", "jobs"]):
            let limit = Int(query(r, "limit") ?? "20") ?? 20
            var list = Array(jobs.reversed())
            if let after = query(r, "after"), let i = list.firstIndex(where: { $0["id"] as? String == after }) { list = Array(list[(i + 1)...]) }
            let page = Array(list.prefix(limit))
            return ok(["object": "list", "data": page.map(visible), "has_more": list.count > limit])
        case ("GET", let p) where p.count == 4 && p[2] == "jobs":
            guard let i = jobs.firstIndex(where: { $0["id"] as? String == p[3] }) else { return notFound(p[3]) }
            advance(i)
            return ok(visible(jobs[i]))
        case ("GET", let p) where p.count == 5 && p[4] == "events":
            return ok(["object": "list", "data": Array((events[p[3]] ?? []).reversed()), "has_more": false])
        case ("GET", let p) where p.count == 5 && p[4] == "checkpoints":
            return ok(["object": "list", "data": [["id": "ftckpt-1", "step_number": 3, "fine_tuned_model_checkpoint": "ft:ckpt:3",
                                                   "metrics": ["train_loss": 0.5]]], "has_more": false])
        case ("POST", let p) where p.count == 5 && p[4] == "cancel":
            guard let i = jobs.firstIndex(where: { $0["id"] as? String == p[3] }) else { return notFound(p[3]) }
            jobs[i]["status"] = "cancelled"
            return ok(visible(jobs[i]))
        case ("POST", ["v1", "chat", "completions"]):
            let body = (try? JSONSerialization.jsonObject(with: r.body)) as? [String: Any]
            let messages = (body?["messages"] as? [[String: Any]] ?? []).map { m in m.compactMapValues { $0 as? String } }
            let model = body?["model"] as? String ?? ""
            chatModels.append(model)
            let (text, pt, ct) = chat?(model, messages) ?? (answer(messages), 10, 2)
            return ok(["id": "chatcmpl-1", "object": "chat.completion", "model": model,
                       "choices": [["index": 0, "message": ["role": "assistant", "content": text], "finish_reason": "stop"]],
                       "usage": ["prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct]])
        default:
            return .json(404, #"{"error":{"message":"no route \#(route)","type":"invalid_request_error"}}"#)
        }
    }

    private func advance(_ i: Int) {
        let id = jobs[i]["id"] as! String
        guard let step = jobs[i]["_step"] as? Int, !["succeeded", "failed", "cancelled"].contains(jobs[i]["status"] as? String ?? "") else { return }
        let next = min(step + 1, statuses.count - 1)
        var status = statuses[next]
        if status == "running" {
            addEvent(id, "Step 1/2: training loss=0.9", ["step": 1, "total_steps": 2, "train_loss": 0.9])
            addEvent(id, "Step 2/2: training loss=0.4", ["step": 2, "total_steps": 2, "train_loss": 0.4])
        }
        if status == "succeeded", let why = failWith {
            status = "failed"
            jobs[i]["error"] = ["code": "invalid_training_file", "message": why, "param": "training_file"]
        }
        if status == "succeeded" {
            jobs[i]["fine_tuned_model"] = "ft:\(jobs[i]["model"] as? String ?? "m"):tune:\(id)"
            jobs[i]["result_files"] = ["file-result-\(id)"]
            jobs[i]["trained_tokens"] = 1234
        }
        jobs[i]["status"] = status
        jobs[i]["_step"] = next
        addEvent(id, "Job \(status)", nil)
    }

    private func addEvent(_ job: String, _ message: String, _ data: [String: Any]?) {
        counter += 1
        var e: [String: Any] = ["id": "ftevent-\(counter)", "object": "fine_tuning.job.event", "created_at": counter,
                                "level": "info", "message": message, "type": data == nil ? "message" : "metrics"]
        if let data { e["data"] = data }
        events[job, default: []].append(e)
    }

    private func visible(_ job: [String: Any]) -> [String: Any] { job.filter { !$0.key.hasPrefix("_") } }

    private func query(_ r: LoopbackRequest, _ name: String) -> String? {
        r.query.split(separator: "&").compactMap { kv -> String? in
            let p = kv.split(separator: "=", maxSplits: 1)
            return p.count == 2 && p[0] == name ? String(p[1]).removingPercentEncoding : nil
        }.first
    }

    private func ok(_ object: [String: Any]) -> LoopbackAction {
        .respond(status: 200, headers: ["Content-Type": "application/json"],
                 body: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    private func notFound(_ id: String) -> LoopbackAction {
        .json(404, #"{"error":{"message":"No such job: \#(id)","type":"invalid_request_error","code":"not_found"}}"#)
    }
}
