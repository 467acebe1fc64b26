// ServeRegistryTests — with --registry, the registry's adapters trained on the served base are listed
// and servable by their reference (NAME@VERSION, NAME); adapters of another base are refused.
import Engine
import Foundation
import Hummingbird
import Testing
@testable import TuneServer
import TuneKit

@Suite struct ServeRegistryTests {
    @Test func registeredAdaptersOfThisBaseAreServed() async throws {
        let f = try ServeFixture { c, dir in
            c.registryPath = dir.appendingPathComponent("registry.sqlite").path
            c.blobRoot = dir.appendingPathComponent("blobs").path
        }
        defer { f.cleanUp() }
        let registry = try Registry.open(path: f.config.registryPath!, blobRoot: f.config.blobRoot)
        for (name, base) in [("helper", "tiny.gguf"), ("stranger", "other.gguf")] {
            let dir = f.dir.appendingPathComponent("adapter-\(name)")
            let lora = try LoRAAdapter(config: LoRAConfig(), model: LlamaConfig.tiny)
            try lora.save(directory: dir.path, baseModel: base)
            _ = try registry.register(NewArtifact(kind: .adapter, name: name, source: dir, metadata: ["base_model": .string(base)]))
        }
        try await f.live { client in
            try await client.execute(uri: "/v1/models", method: .get, headers: f.auth) { r in
                let o = try json(r); #expect((o["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["tiny", "helper@1"])
            }
            var h = f.auth
            h[.contentType] = "application/json"
            for model in ["helper@1", "helper"] {
                let chat: [String: Any] = ["model": model, "messages": [["role": "user", "content": "hi"]], "max_tokens": 3]
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h, body: try jsonBody(chat)) { r in
                    #expect(r.status == .ok, "\(String(buffer: r.body))")
                    let o = try json(r); #expect(o["model"] as? String == model)
                }
            }
            let other: [String: Any] = ["model": "stranger@1", "messages": [["role": "user", "content": "hi"]]]
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h, body: try jsonBody(other)) { r in
                #expect(r.status == .badRequest)
                #expect(String(buffer: r.body).contains("was not trained on this server's base model"))
            }
        }
    }
}
