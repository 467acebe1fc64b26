// OpenAIClient+Endpoints — the calls tune makes: files, fine-tuning jobs (create, get, list with
// cursor pagination, events, checkpoints, cancel) and chat completions.

import Foundation

extension OpenAIClient {
    // MARK: - Files

    /// `POST /v1/files` (multipart: `purpose`, `file`).
    public func uploadFile(_ content: Data, filename: String, purpose: String = "fine-tune") throws -> OpenAIFile {
        let fields = [HTTPRequest.MultipartField(name: "purpose", value: Data(purpose.utf8)),
                      HTTPRequest.MultipartField(name: "file", value: content, filename: filename, contentType: "application/jsonl")]
        return try call("upload \(filename)", "POST", "/files", body: .multipart(fields), as: OpenAIFile.self)
    }

    // MARK: - Fine-tuning jobs

    /// `POST /v1/fine_tuning/jobs`. Before a retry it looks for a job with the same `metadata`, so a
    /// request that reached the provider but whose answer was lost does not create a second job.
    public func createJob(_ body: CreateFineTuningJob) throws -> FineTuningJob {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(body)
        let lookup: (() throws -> FineTuningJob?)? = body.metadata.map { meta in
            { try self.findJobs(metadata: meta).first { !["failed", "cancelled"].contains($0.status) } }
        }
        return try call("create fine-tuning job", "POST", "/fine_tuning/jobs", body: .bytes(data), jsonBody: true,
                        as: FineTuningJob.self, beforeRetry: lookup)
    }

    /// `GET /v1/fine_tuning/jobs/{id}`.
    public func job(_ id: String) throws -> FineTuningJob {
        try call("get fine-tuning job \(id)", "GET", "/fine_tuning/jobs/\(Self.pathSegment(id))", as: FineTuningJob.self)
    }

    /// `POST /v1/fine_tuning/jobs/{id}/cancel`.
    public func cancelJob(_ id: String) throws -> FineTuningJob {
        try call("cancel fine-tuning job \(id)", "POST", "/fine_tuning/jobs/\(Self.pathSegment(id))/cancel", body: .bytes(Data()),
                 as: FineTuningJob.self)
    }

    /// `GET /v1/fine_tuning/jobs?limit=&after=` — one page, newest first.
    public func listJobs(limit: Int = 20, after: String? = nil) throws -> ListPage<FineTuningJob> {
        try call("list fine-tuning jobs", "GET", "/fine_tuning/jobs" + Self.query(["limit": "\(limit)", "after": after]),
                 as: ListPage<FineTuningJob>.self)
    }

    /// Every job whose metadata contains all of `metadata`, newest first, following the `after` cursor
    /// through at most `maxPages` pages. Filtering is done here: not every provider filters by metadata.
    public func findJobs(metadata: [String: String], maxPages: Int = 50) throws -> [FineTuningJob] {
        var out: [FineTuningJob] = [], after: String? = nil
        for _ in 0..<maxPages {
            let page = try listJobs(limit: 100, after: after)
            out += page.data.filter { job in metadata.allSatisfy { job.metadata?[$0.key] == $0.value } }
            guard page.hasMore == true, let last = page.data.last?.id, last != after else { break }
            after = last
        }
        return out
    }

    /// `GET /v1/fine_tuning/jobs/{id}/events?limit=` — the newest `limit` events, newest first.
    public func events(job id: String, limit: Int = 50, after: String? = nil) throws -> ListPage<FineTuningEvent> {
        try call("list events of job \(id)", "GET",
                 "/fine_tuning/jobs/\(Self.pathSegment(id))/events" + Self.query(["limit": "\(limit)", "after": after]),
                 as: ListPage<FineTuningEvent>.self)
    }

    /// `GET /v1/fine_tuning/jobs/{id}/checkpoints`.
    public func checkpoints(job id: String, limit: Int = 20) throws -> ListPage<FineTuningCheckpoint> {
        try call("list checkpoints of job \(id)", "GET",
                 "/fine_tuning/jobs/\(Self.pathSegment(id))/checkpoints" + Self.query(["limit": "\(limit)"]),
                 as: ListPage<FineTuningCheckpoint>.self)
    }

    // MARK: - Chat completions

    /// `POST /v1/chat/completions`; returns the first choice's text and the usage.
    public func chatCompletion(_ request: ChatCompletionRequest) throws -> (text: String, usage: ChatCompletionResponse.Usage?) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let r = try call("chat completion with \(request.model)", "POST", "/chat/completions", body: .bytes(try encoder.encode(request)),
                         jsonBody: true, as: ChatCompletionResponse.self)
        guard let text = r.choices.first?.message?.content else {
            throw TuneError(.remote, "chat completion with \(request.model) (POST \(redactedURL(baseURL))/chat/completions): the reply has no choices[0].message.content")
        }
        return (text, r.usage)
    }

    // MARK: - URL pieces

    static func pathSegment(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? s
    }

    static func query(_ items: [String: String?]) -> String {
        let parts = items.compactMap { k, v in v.map { "\(k)=\(pathSegment($0))" } }.sorted()
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}
