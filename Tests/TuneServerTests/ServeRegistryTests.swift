// ServeRegistryTests — with --registry, the registry's adapters trained on the served base are listed
// and servable by their reference (NAME@VERSION, NAME); adapters of another base are refused.
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import TuneServer
import TuneKit

@Suite struct ServeRegistryTests {
    @Test func registeredAdaptersOfThisBaseAreServed() async throws {
        var f = try ServeFixture()
        defer { f.cleanUp() }
        let registryPath = f.dir.appendingPathComponent("registry.sqlite").path
        let registry = try Registry.open(path: registryPath, blobRoot: f.dir.appendingPathComponent("blobs").path)
        for (name, base) in [("helper", "tiny.gguf"), ("stranger", "other.gguf")] {
            let dir = f.dir.appendingPathComponent("adapter-\(name)")
            let lora = try LoRAAdapter(config: LoRAConfig(), model: LlamaConfig.tinyForServeTests)
            try lora.save(directory: dir.path, baseModel: base)
            _ = try registry.register(NewArtifact(kind: .adapter, name: name, source: dir, metadata: ["base_model": .string(base)]))
        }
        f.config.registryPath = registryPath
        f.config.blobRoot = f.dir.appendingPathComponent("blobs").path
        try await f.app().test(.router) { client in
            try await client.execute(uri: "/v1/models", method: .get, headers: f.auth) { r in
                #expect((try json(r)["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["tiny", "helper@1"])
            }
            var h = f.auth
            h[.contentType] = "application/json"
            for model in ["helper@1", "helper"] {
                let chat: [String: Any] = ["model": model, "messages": [["role": "user", "content": "hi"]], "max_tokens": 3]
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h, body: try jsonBody(chat)) { r in
                    #expect(r.status == .ok, "\(String(buffer: r.body))")
                    #expect(try json(r)["model"] as? String == model)
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

extension LlamaConfig {
    /// The config TinyLlama's `.tiny` files are written with (the served test model).
    static var tinyForServeTests: LlamaConfig { TinyLlama.tiny }
}
