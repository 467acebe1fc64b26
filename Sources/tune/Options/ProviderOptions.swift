// ProviderOptions — which OpenAI-compatible provider a `tune jobs` command talks to. The API key is
// read from the environment variable named here and never printed.
import ArgumentParser
import Foundation
import TuneKit

struct ProviderOptions: ParsableArguments {
    @Option(name: .customLong("base-url"), help: "Provider URL (default: $OPENAI_BASE_URL, else https://api.openai.com/v1).")
    var baseURL: String?

    @Option(name: .customLong("api-key-env"), help: "Environment variable holding the API key.")
    var apiKeyEnv = "OPENAI_API_KEY"

    func client() throws -> OpenAIClient {
        var config = ManagedTrainConfig()
        config.baseURL = baseURL
        config.apiKeyEnv = apiKeyEnv
        var c = try config.client(environment: ProcessInfo.processInfo.environment)
        c.retry.deadline = 120
        return c
    }
}
