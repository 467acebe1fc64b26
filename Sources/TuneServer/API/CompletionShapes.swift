// CompletionShapes — OpenAI's legacy `POST /v1/completions` request and response, field for field:
// `prompt` as a string, a list of strings, a token-id list or a list of token-id lists; `echo`;
// `logprobs` (top-k, at most 5) answered as {tokens, token_logprobs, top_logprobs, text_offset}, the
// shape lm-evaluation-harness's `local-completions` model reads for log-likelihood tasks.

import Foundation

struct CompletionRequest: Decodable, Sendable {
    var model: String
    var prompt: Prompt
    var maxTokens: Int?
    var temperature: Double?
    var topP: Double?
    var n: Int?
    var bestOf: Int?
    var stream: Bool?
    var streamOptions: ChatRequest.StreamOptions?
    var logprobs: Int?
    var echo: Bool?
    var stop: ChatRequest.Stop?
    var seed: Int?
    var suffix: String?
    var presencePenalty: Double?
    var frequencyPenalty: Double?
    var logitBias: [String: Double]?

    /// `prompt` in any of its four shapes.
    enum Prompt: Decodable, Sendable {
        case texts([String])
        case tokens([[Int]])
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .texts([s]) }
            else if let a = try? c.decode([String].self) { self = .texts(a) }
            else if let a = try? c.decode([Int].self) { self = .tokens([a]) }
            else if let a = try? c.decode([[Int]].self) { self = .tokens(a) }
            else {
                throw DecodingError.dataCorruptedError(
                    in: c, debugDescription: "expected a string, a list of strings, a list of token ids or a list of token-id lists")
            }
        }
        var count: Int { switch self { case .texts(let a): a.count; case .tokens(let a): a.count } }
    }

    enum CodingKeys: String, CodingKey {
        case model, prompt, maxTokens = "max_tokens", temperature, topP = "top_p", n, bestOf = "best_of", stream
        case streamOptions = "stream_options", logprobs, echo, stop, seed, suffix, presencePenalty = "presence_penalty"
        case frequencyPenalty = "frequency_penalty", logitBias = "logit_bias"
    }
}

/// `choices[i].logprobs`: one entry per token of `text` (the echoed prompt first when `echo`).
struct CompletionLogprobs: Encodable, Sendable {
    var tokens: [String] = []
    /// null for a prompt's first token (nothing before it to condition on).
    var tokenLogprobs: [Double?] = []
    var topLogprobs: [[String: Double]?] = []
    /// Offset of each token in `text`, in Unicode code points.
    var textOffset: [Int] = []

    enum CodingKeys: String, CodingKey {
        case tokens, tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs", textOffset = "text_offset"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(tokenLogprobs, forKey: .tokenLogprobs)   // [Double?] → nulls stay in the list
        try c.encode(topLogprobs, forKey: .topLogprobs)
        try c.encode(textOffset, forKey: .textOffset)
    }
}

struct Completion: Encodable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
    struct Choice: Encodable {
        var text: String
        var index: Int
        var logprobs: CompletionLogprobs?
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case text, index, logprobs, finishReason = "finish_reason" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(index, forKey: .index)
            try c.encode(logprobs, forKey: .logprobs)         // null, not absent
            try c.encode(finishReason, forKey: .finishReason)
        }
    }
}

/// One server-sent event of a streamed completion (`usage` only in the final one with include_usage).
struct CompletionChunk: Encodable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Completion.Choice]
    var usage: Usage?
}
