// ServeJobTests — the job lifecycle end to end on a tiny model (validate → queue → train → events,
// checkpoints → servable model → chat), cancel, and durability across a server restart.
import Foundation
import Hummingbird
import Testing
@testable import TuneServer
import Engine

@Suite(.serialized) struct ServeJobTests {
    @Test func jobRunsToASucceededServableModel() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        try await f.live { client in
            let file = try await client.upload(ServeFixture.chatJSONL(12), headers: f.auth)
            let created = try await client.createJob(
                ["model": "tiny", "training_file": file, "suffix": "lab", "seed": 3, "metadata": ["team": "a"],
                 "hyperparameters": ["n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": "auto"]], headers: f.auth)
            let id = created["id"] as! String
            #expect(created["status"] as? String == "queued")
            #expect(created["object"] as? String == "fine_tuning.job")
            let hp = created["hyperparameters"] as? [String: Any]
            #expect(hp?["n_epochs"] as? Int == 2 && hp?["batch_size"] as? Int == 2 && hp?["learning_rate_multiplier"] as? Double == 1)
            #expect(created.keys.contains("fine_tuned_model") && created["fine_tuned_model"] is NSNull)

            let done = try await client.waitForJob(id, headers: f.auth) { ["succeeded", "failed", "cancelled"].contains($0) }
            #expect(done["status"] as? String == "succeeded", "\(done)")
            let model = "ft:tiny:lab:\(id)"
            #expect(done["fine_tuned_model"] as? String == model)
            #expect((done["trained_tokens"] as? Int ?? 0) > 0)
            #expect(done["finished_at"] is Int)

            // Events: newest first, steps with metrics data, the lifecycle in order.
            try await client.execute(uri: "/v1/fine_tuning/jobs/\(id)/events?limit=100", method: .get, headers: f.auth) { r in
                let events = try json(r)["data"] as? [[String: Any]] ?? []
                let messages = events.compactMap { $0["message"] as? String }.reversed().map { $0 }
                #expect(messages.first?.hasPrefix("Validating training file") == true)
                #expect(messages.contains("Files validated, moving job to queued state."))
                #expect(messages.contains("Fine-tuning job started."))
                #expect(messages.last?.hasPrefix("The job has successfully completed") == true)
                let steps = events.filter { $0["type"] as? String == "metrics" }
                #expect(steps.count == 12, "12 rows, 2 epochs, batch 2: 12 steps")
                let data = steps.first?["data"] as? [String: Any]
                #expect(data?["step"] as? Double == 12 && data?["train_loss"] is Double)
            }
            try await client.execute(uri: "/v1/fine_tuning/jobs/\(id)/events?limit=2", method: .get, headers: f.auth) { r in
                let page = try json(r)
                #expect((page["data"] as? [Any])?.count == 2 && page["has_more"] as? Bool == true)
            }
            try await client.execute(uri: "/v1/fine_tuning/jobs/\(id)/checkpoints", method: .get, headers: f.auth) { r in
                let cps = try json(r)["data"] as? [[String: Any]] ?? []
                #expect(cps.compactMap { $0["step_number"] as? Int } == [12, 10, 8, 6, 4, 2])
                #expect(cps.first?["fine_tuned_model_checkpoint"] as? String == "\(model):ckpt-step-12")
                #expect((cps.first?["metrics"] as? [String: Any])?["train_loss"] is Double)
            }
            // List with the metadata filter.
            try await client.execute(uri: "/v1/fine_tuning/jobs?metadata%5Bteam%5D=a", method: .get, headers: f.auth) { r in
                let o = try json(r); #expect((o["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [id])
            }
            try await client.execute(uri: "/v1/fine_tuning/jobs?metadata[team]=b", method: .get, headers: f.auth) { r in
                let o = try json(r); #expect((o["data"] as? [Any])?.isEmpty == true)
            }
            // The fine-tune is listed and servable.
            try await client.execute(uri: "/v1/models", method: .get, headers: f.auth) { r in
                let o = try json(r); #expect((o["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["tiny", model])
            }
            var h = f.auth
            h[.contentType] = "application/json"
            let chat: [String: Any] = ["model": model, "messages": [["role": "user", "content": "item 1 please"]], "max_tokens": 6,
                                       "temperature": 0]
            let whole = try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h, body: try jsonBody(chat)) { r in
                #expect(r.status == .ok, "\(String(buffer: r.body))")
                let o = try json(r)
                #expect(o["object"] as? String == "chat.completion" && o["model"] as? String == model)
                let choice = (o["choices"] as? [[String: Any]])?.first
                #expect((choice?["message"] as? [String: Any])?["role"] as? String == "assistant")
                #expect(["stop", "length"].contains(choice?["finish_reason"] as? String ?? ""))
                #expect(((o["usage"] as? [String: Any])?["completion_tokens"] as? Int ?? 0) >= 1)
                return (choice?["message"] as? [String: Any])?["content"] as? String ?? ""
            }
            var streamed = chat
            streamed["stream"] = true
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h, body: try jsonBody(streamed)) { r in
                #expect(r.headers[.contentType] == "text/event-stream")
                let events = String(buffer: r.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }
                #expect(events.allSatisfy { $0.hasPrefix("data: ") })
                #expect(events.last == "data: [DONE]")
                var text = ""
                for e in events.dropLast() {
                    let o = try JSONSerialization.jsonObject(with: Data(e.dropFirst(6).utf8)) as? [String: Any]
                    #expect(o?["object"] as? String == "chat.completion.chunk")
                    let delta = ((o?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])
                    text += delta?["content"] as? String ?? ""
                }
                #expect(text == whole, "streamed and whole completions agree at temperature 0")
            }
        }
    }

    @Test func cancelStopsARunningJob() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        try await f.live { client in
            let file = try await client.upload(ServeFixture.chatJSONL(48), headers: f.auth)
            let job = try await client.createJob(["model": "tiny", "training_file": file, "hyperparameters": ["n_epochs": 50, "batch_size": 1]],
                                                 headers: f.auth)
            let id = job["id"] as! String
            let running = try await client.waitForJob(id, headers: f.auth) { $0 == "running" }
            #expect(running["status"] as? String == "running")
            try await client.execute(uri: "/v1/fine_tuning/jobs/\(id)/cancel", method: .post, headers: f.auth) { r in
                #expect(r.status == .ok)
            }
            let done = try await client.waitForJob(id, headers: f.auth) { ["succeeded", "failed", "cancelled"].contains($0) }
            #expect(done["status"] as? String == "cancelled")
            #expect(done["fine_tuned_model"] is NSNull)
            try await client.execute(uri: "/v1/fine_tuning/jobs/\(id)/cancel", method: .post, headers: f.auth) { r in
                #expect(r.status == .badRequest)
            }
            // A queued job is cancelled at once.
            let queued = try await client.createJob(["model": "tiny", "training_file": file], headers: f.auth)
            let qid = queued["id"] as! String
            try await client.execute(uri: "/v1/fine_tuning/jobs/\(qid)/cancel", method: .post, headers: f.auth) { r in
                let status = try json(r)["status"] as? String
                #expect(status == "cancelled" || status == "running")
            }
        }
    }

    @Test func restartKeepsJobsAndResumesOrFailsTheRunningOne() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        let ids = try await f.live { client -> (done: String, resumable: String, queued: String) in
            let file = try await client.upload(ServeFixture.chatJSONL(12), headers: f.auth)
            let first = try await client.createJob(["model": "tiny", "training_file": file, "hyperparameters": ["n_epochs": 1, "batch_size": 4]],
                                                   headers: f.auth)
            let done = first["id"] as! String
            _ = try await client.waitForJob(done, headers: f.auth) { $0 == "succeeded" }
            let big = try await client.upload(ServeFixture.chatJSONL(48), headers: f.auth)
            let long = try await client.createJob(["model": "tiny", "training_file": big, "hyperparameters": ["n_epochs": 50, "batch_size": 1]],
                                                  headers: f.auth)
            let resumable = long["id"] as! String
            let queued = try await client.createJob(["model": "tiny", "training_file": file], headers: f.auth)["id"] as! String
            // Wait for a checkpoint of the long job, then stop the server (graceful shutdown).
            _ = try await pollUntil(seconds: 120, every: .milliseconds(20)) {
                let n = try await client.execute(uri: "/v1/fine_tuning/jobs/\(resumable)/checkpoints", method: .get, headers: f.auth) {
                    (try json($0)["data"] as? [Any])?.count ?? 0
                }
                return n > 0
            }
            return (done, resumable, queued)
        }
        // Graceful shutdown checkpointed and requeued the running job.
        let store = try ServeStore(directory: f.config.stateDirectory)
        #expect(try store.job(ids.done)?.status == .succeeded)
        #expect(try store.job(ids.resumable)?.status == .queued)
        #expect(try store.job(ids.queued)?.status == .queued)
        let events = try store.events(job: ids.resumable, after: nil, limit: 5).events.map(\.message)
        #expect(events.first?.contains("shutting down; the job was requeued") == true, "\(events)")

        // A crash while running: with a checkpoint the job is requeued; without one it fails with a reason.
        try store.updateJob(ids.resumable) { $0.status = .running }
        try store.updateJob(ids.queued) { $0.status = .running }
        try await f.live { client in
            let resumed = try await client.job(ids.resumable, headers: f.auth)
            #expect(["queued", "running"].contains(resumed["status"] as? String ?? ""))
            let failed = try await client.job(ids.queued, headers: f.auth)
            #expect(failed["status"] as? String == "failed")
            #expect((failed["error"] as? [String: Any])?["code"] as? String == "server_restarted")
            let done = try await client.job(ids.done, headers: f.auth)
            #expect(done["status"] as? String == "succeeded")
            // The fine-tune of the first server is still served.
            try await client.execute(uri: "/v1/models/ft:tiny::\(ids.done)", method: .get, headers: f.auth) { r in
                #expect(r.status == .ok)
            }
            // The requeued job resumes from its checkpoint (the trainer says so in the events).
            var messages: [String] = []
            _ = try await pollUntil(seconds: 60, every: .milliseconds(20)) {
                messages = try await client.execute(uri: "/v1/fine_tuning/jobs/\(ids.resumable)/events?limit=100", method: .get, headers: f.auth) {
                    (try json($0)["data"] as? [[String: Any]])?.compactMap { $0["message"] as? String } ?? []
                }
                return messages.contains(where: { $0.hasPrefix("Resumed from the checkpoint at step") })
            }
            #expect(messages.contains { $0.hasPrefix("Resumed from the checkpoint at step") }, "\(messages.prefix(5))")
            #expect(messages.contains { $0.contains("requeued and resumes from its checkpoint") })
            try await client.execute(uri: "/v1/fine_tuning/jobs/\(ids.resumable)/cancel", method: .post, headers: f.auth) { _ in }
        }
    }
}
