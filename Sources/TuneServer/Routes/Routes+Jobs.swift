// Routes+Jobs — `/v1/fine_tuning/jobs`: create (validating the files at once, with line numbers),
// list (after, limit, metadata[k]=v), retrieve, events, checkpoints and cancel.

import Foundation
import Hummingbird

extension ServeRoutes {
    func addJobRoutes(to router: Router<ServeContext>) {
        router.post("/v1/fine_tuning/jobs") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: state.config.maxUploadBytes)
            let job = try createJob(try decodeBody(CreateJobRequest.self, from: body))
            return try jsonResponse(job)
        }
        router.get("/v1/fine_tuning/jobs") { request, _ in
            let limit = try Self.limit(request)
            var filters: [(String, String)] = []
            for (rawKey, v) in request.uri.queryParameters {   // Hummingbird decodes values, not keys
                let k = String(rawKey).removingPercentEncoding ?? String(rawKey)
                if k.hasPrefix("metadata["), k.hasSuffix("]") { filters.append((String(k.dropFirst(9).dropLast()), String(v))) }
            }
            var jobs = try state.store.jobs().filter { j in filters.allSatisfy { j.metadata?[$0.0] == $0.1 } }
            if let after = request.uri.queryParameters["after"].map(String.init) {
                guard let i = jobs.firstIndex(where: { $0.id == after }) else {
                    throw APIError.notFound("No fine-tuning job with id '\(after)' (the 'after' cursor).", param: "after")
                }
                jobs = Array(jobs[(i + 1)...])
            }
            return try jsonResponse(ListPage(data: Array(jobs.prefix(limit)), hasMore: jobs.count > limit))
        }
        router.get("/v1/fine_tuning/jobs/:id") { _, context in
            try jsonResponse(try job(context))
        }
        router.get("/v1/fine_tuning/jobs/:id/events") { request, context in
            let j = try job(context)
            let page = try state.store.events(job: j.id, after: request.uri.queryParameters["after"].map(String.init), limit: try Self.limit(request))
            return try jsonResponse(ListPage(data: page.events, hasMore: page.hasMore))
        }
        router.get("/v1/fine_tuning/jobs/:id/checkpoints") { request, context in
            let j = try job(context)
            let page = try state.store.checkpoints(job: j.id, after: request.uri.queryParameters["after"].map(String.init),
                                                   limit: try Self.limit(request))
            return try jsonResponse(ListPage(data: page.checkpoints, hasMore: page.hasMore, ids: page.checkpoints.map(\.id)))
        }
        router.post("/v1/fine_tuning/jobs/:id/cancel") { _, context in
            let id = try job(context).id
            let updated = try state.store.updateJob(id) { j in
                switch j.status {
                case .validatingFiles, .queued:
                    j.status = .cancelled
                    j.finishedAt = ServeStore.now()
                case .running: break
                case .succeeded, .failed, .cancelled:
                    throw APIError.invalid("Job \(id) has already \(j.status == .succeeded ? "succeeded" : j.status.rawValue) and cannot be cancelled.",
                                           code: "job_not_cancellable")
                }
            }
            if updated.status == .running {
                state.worker.requestCancel(id)
                try state.store.addEvent(job: id, message: "Cancellation requested; the job stops at its next step.")
            } else {
                try state.store.addEvent(job: id, message: "Fine-tuning job cancelled.")
            }
            return try jsonResponse(updated)
        }
    }

    private func job(_ context: ServeContext) throws -> FineTuningJob {
        let id = try context.parameters.require("id")
        guard let j = try state.store.job(id) else {
            throw APIError.notFound("No fine-tuning job with id '\(id)'.", param: "fine_tuning_job_id")
        }
        return j
    }

    /// Checks the request, records the job as `validating_files`, validates its files and moves it to
    /// `queued` or `failed` (with every problem's line number in `error`), all before answering.
    func createJob(_ r: CreateJobRequest) throws -> FineTuningJob {
        guard r.model == state.host.baseID else {
            throw APIError.invalid("Model '\(r.model)' is not available for fine-tuning on this server; available: '\(state.host.baseID)'.",
                                   param: "model", code: "model_not_available")
        }
        if let m = r.method, m.type != "supervised" {
            throw APIError.invalid("Fine-tuning method '\(m.type)' is not supported by tune serve; use 'supervised'.", param: "method.type")
        }
        let hp = r.method?.supervised?.hyperparameters ?? r.hyperparameters
        let epochs = hp?.nEpochs?.value ?? 3, batch = hp?.batchSize?.value ?? 4, lr = hp?.learningRateMultiplier?.value ?? 1
        guard (1...50).contains(epochs) else { throw APIError.invalid("n_epochs must be in 1...50, got \(epochs).", param: "hyperparameters.n_epochs") }
        guard (1...256).contains(batch) else { throw APIError.invalid("batch_size must be in 1...256, got \(batch).", param: "hyperparameters.batch_size") }
        guard lr > 0, lr <= 10 else {
            throw APIError.invalid("learning_rate_multiplier must be in (0, 10], got \(lr).", param: "hyperparameters.learning_rate_multiplier")
        }
        if let s = r.suffix {
            guard !s.isEmpty, s.count <= 64, !s.contains(":") else {
                throw APIError.invalid("suffix must be 1 to 64 characters without ':'.", param: "suffix")
            }
        }
        if let md = r.metadata {
            guard md.count <= 16, md.allSatisfy({ $0.key.count <= 64 && $0.value.count <= 512 }) else {
                throw APIError.invalid("metadata: at most 16 keys of up to 64 characters, values up to 512.", param: "metadata")
            }
        }
        guard let training = try state.store.file(r.trainingFile) else {
            throw APIError.invalid("Invalid file id '\(r.trainingFile)'.", param: "training_file", code: "invalid_file")
        }
        var validation: FileObject?
        if let v = r.validationFile {
            guard let f = try state.store.file(v) else { throw APIError.invalid("Invalid file id '\(v)'.", param: "validation_file", code: "invalid_file") }
            validation = f
        }
        let job = FineTuningJob(
            id: ServeStore.newID("ftjob-"), model: r.model, createdAt: ServeStore.now(), status: .validatingFiles,
            trainingFile: training.id, validationFile: validation?.id,
            hyperparameters: ResolvedHyperparameters(nEpochs: epochs, batchSize: batch, learningRateMultiplier: lr),
            seed: r.seed ?? Int.random(in: 0..<(1 << 31)), suffix: r.suffix, metadata: r.metadata)
        try state.store.insertJob(job)
        try state.store.addEvent(job: job.id, message: "Validating training file: \(training.id)"
                                 + (validation.map { " and validation file: \($0.id)" } ?? ""))
        var problems: [(param: String, text: String)] = []
        for (param, f) in [("training_file", training)] + (validation.map { [("validation_file", $0)] } ?? []) {
            let data = FileManager.default.contents(atPath: state.store.filePath(f.id)) ?? Data()
            let v = ChatJSONLValidator.validate(data)
            if !v.problems.isEmpty {
                let more = v.more > 0 ? "; and \(v.more) more" : ""
                problems.append((param, "\(param) \(f.id) (\(f.filename)) is not valid chat fine-tuning data: "
                                 + v.problems.map(\.description).joined(separator: "; ") + more))
            }
        }
        if let first = problems.first {
            let message = problems.map(\.text).joined(separator: ". ")
            return try state.store.updateJob(job.id, event: ("error", message)) {
                $0.status = .failed
                $0.finishedAt = ServeStore.now()
                $0.error = JobError(code: "invalid_\(first.param)", message: message, param: first.param)
            }
        }
        return try state.store.updateJob(job.id, event: ("info", "Files validated, moving job to queued state.")) { $0.status = .queued }
    }
}
