// ManagedTrainerTests — the job lifecycle against FakeProvider: upload + create + poll to success with
// events; a second run finds the job by its metadata and creates nothing; a create whose reply was
// lost is found instead of repeated; failed jobs fail with the provider's message; stopping leaves
// the job running.
import Engine
import Foundation
import LoopbackHTTP
import Testing
import TuneKit

private func request(_ key: String) -> ManagedTrainRequest {
    ManagedTrainRequest(model: "gpt-4o-mini", train: Data(#"{"messages":[{"content":"hi","role":"user"},{"content":"yo","role":"assistant"}]}"#.utf8 + [10]),
                        validation: Data("{\"messages\":[]}\n".utf8), hyperparameters: Hyperparameters(nEpochs: .number(2)),
                        suffix: "t", seed: 1, metadata: ["tune_cache_key": key])
}

private func trainer(_ p: FakeProvider, clock: FakeClock = FakeClock()) throws -> ManagedTrainer {
    ManagedTrainer(client: try makeClient(p.url, clock: clock), pollInterval: 5, timeout: 3600)
}

@Suite(.serialized) struct ManagedTrainerTests {
    @Test func trainsThenASecondRunReattaches() throws {
        let p = try FakeProvider()
        var events: [ManagedTrainEvent] = []
        let first = try trainer(p).run(request("k1")) { events.append($0) }
        #expect(first.job.status == "succeeded" && first.job.fineTunedModel == "ft:gpt-4o-mini:tune:ftjob-3" && !first.reattached)
        #expect(first.job.trainedTokens == 1234 && first.checkpoints.count == 1)
        #expect(events.contains(.uploaded(file: "file-0001", bytes: request("k1").train.count, role: "train")))
        #expect(events.contains(.created(job: "ftjob-3")))
        #expect(events.filter { if case .status = $0 { true } else { false } }
                == ["validating_files", "queued", "running", "succeeded"].map { ManagedTrainEvent.status($0) })
        #expect(events.contains(.event(message: "Step 2/2: training loss=0.4", step: 2, totalSteps: 2, trainLoss: 0.4)))
        #expect(p.uploads.count == 2 && String(decoding: p.uploads[0], as: UTF8.self).contains("\"purpose\""))
        let created = p.server.requests.first { $0.method == "POST" && $0.path == "/v1/fine_tuning/jobs" }!
        let body = try JSONSerialization.jsonObject(with: created.body) as! [String: Any]
        #expect((body["metadata"] as? [String: String]) == ["tune_cache_key": "k1"] && body["suffix"] as? String == "t")
        #expect((body["hyperparameters"] as? [String: Any])?["n_epochs"] as? Int == 2 && body["validation_file"] as? String == "file-0002")

        var again: [ManagedTrainEvent] = []
        let second = try trainer(p).run(request("k1")) { again.append($0) }
        #expect(second.reattached && second.job.id == first.job.id && p.jobCount == 1 && p.uploads.count == 2)
        #expect(again.first == .attached(job: "ftjob-3", status: "succeeded"))
        // Another cache key is another job.
        _ = try trainer(p).run(request("k2")) { _ in }
        #expect(p.jobCount == 2)
    }

    @Test func aRunningJobIsResumedAndAFailedOneIsNot() throws {
        let p = try FakeProvider()
        p.seedJob(status: "failed", metadata: ["tune_cache_key": "k"])
        p.seedJob(status: "running", metadata: ["tune_cache_key": "k"])
        let r = try trainer(p).run(request("k")) { _ in }
        #expect(r.reattached && r.job.id == "ftjob-seed2" && r.job.status == "succeeded" && p.jobCount == 2)
    }

    @Test func aLostCreateReplyDoesNotCreateASecondJob() throws {
        let p = try FakeProvider()
        p.dropCreateReplies = 1
        let r = try trainer(p).run(request("k")) { _ in }
        #expect(p.jobCount == 1 && r.job.status == "succeeded")
        #expect(p.server.count("POST", "/v1/fine_tuning/jobs") == 1)
    }

    @Test func aFailedJobFailsWithTheProvidersMessage() throws {
        let p = try FakeProvider()
        p.failWith = "training file has 2 examples; at least 10 are required"
        do {
            _ = try trainer(p).run(request("k")) { _ in }
            Issue.record("expected the job to fail")
        } catch let e as TuneError {
            #expect(e.kind == .remote)
            #expect(e.message == "fine-tuning job ftjob-3 failed: invalid_training_file: training file has 2 examples; at least 10 are required")
        }
    }

    @Test func stoppingLeavesTheJobRunning() throws {
        let p = try FakeProvider()
        var t = try trainer(p)
        t.client.shouldStop = { true }
        do {
            _ = try t.run(request("k")) { _ in }
            Issue.record("expected an interruption")
        } catch let e as TuneError {
            #expect(e.kind == .interrupted && e.message.contains("tune jobs cancel ftjob-3"), "\(e.message)")
        }
        #expect(p.server.count("POST", "/v1/fine_tuning/jobs/ftjob-3/cancel") == 0)
    }
}
