// OpenAIModels — the wire shapes of the OpenAI fine-tuning, files and chat-completions APIs that tune
// uses (https://platform.openai.com/docs/api-reference/fine-tuning). Decoding is lenient: unknown
// fields are ignored and everything a provider may leave out is optional, so any OpenAI-compatible
// provider works. On-the-wire names via CodingKeys.

import Foundation

/// `POST /v1/files` → a stored file.
public struct OpenAIFile: Codable, Sendable, Equatable {
    public var id: String
    public var bytes: Int?
    public var filename: String?
    public var purpose: String?
    public var status: String?
    enum CodingKeys: String, CodingKey { case id, bytes, filename, purpose, status }
}

/// A fine-tuning job (`/v1/fine_tuning/jobs/{id}`).
public struct FineTuningJob: Codable, Sendable, Equatable {
    public var id: String
    public var model: String?
    public var status: String
    public var fineTunedModel: String?
    public var trainingFile: String?
    public var validationFile: String?
    public var resultFiles: [String]?
    public var trainedTokens: Int?
    public var hyperparameters: Hyperparameters?
    public var metadata: [String: String]?
    public var error: JobError?
    public var seed: Int?
    public var createdAt: Int?
    public var finishedAt: Int?

    /// `validating_files`, `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    public static let statuses = ["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    public var isTerminal: Bool { ["succeeded", "failed", "cancelled"].contains(status) }

    public struct JobError: Codable, Sendable, Equatable {
        public var code: String?
        public var message: String?
        public var param: String?
    }

    enum CodingKeys: String, CodingKey {
        case id, model, status, hyperparameters, metadata, error, seed
        case fineTunedModel = "fine_tuned_model", trainingFile = "training_file", validationFile = "validation_file"
        case resultFiles = "result_files", trainedTokens = "trained_tokens", createdAt = "created_at", finishedAt = "finished_at"
    }
}

/// Job hyperparameters; each may be a number or the string "auto" on the wire.
public struct Hyperparameters: Codable, Sendable, Hashable {
    public var nEpochs: JSONValue?
    public var batchSize: JSONValue?
    public var learningRateMultiplier: JSONValue?
    public init(nEpochs: JSONValue? = nil, batchSize: JSONValue? = nil, learningRateMultiplier: JSONValue? = nil) {
        self.nEpochs = nEpochs; self.batchSize = batchSize; self.learningRateMultiplier = learningRateMultiplier
    }
    public var isEmpty: Bool { nEpochs == nil && batchSize == nil && learningRateMultiplier == nil }
    enum CodingKeys: String, CodingKey {
        case nEpochs = "n_epochs", batchSize = "batch_size", learningRateMultiplier = "learning_rate_multiplier"
    }
}

/// `POST /v1/fine_tuning/jobs` body.
public struct CreateFineTuningJob: Codable, Sendable, Equatable {
    public var model: String
    public var trainingFile: String
    public var validationFile: String?
    public var hyperparameters: Hyperparameters?
    public var suffix: String?
    public var seed: Int?
    public var metadata: [String: String]?
    public init(model: String, trainingFile: String, validationFile: String? = nil, hyperparameters: Hyperparameters? = nil,
                suffix: String? = nil, seed: Int? = nil, metadata: [String: String]? = nil) {
        self.model = model; self.trainingFile = trainingFile; self.validationFile = validationFile
        self.hyperparameters = hyperparameters; self.suffix = suffix; self.seed = seed; self.metadata = metadata
    }
    enum CodingKeys: String, CodingKey {
        case model, hyperparameters, suffix, seed, metadata
        case trainingFile = "training_file", validationFile = "validation_file"
    }
}

/// One job event (`…/jobs/{id}/events`). Metrics events carry `data` such as `{step, train_loss}`.
public struct FineTuningEvent: Codable, Sendable, Equatable {
    public var id: String
    public var createdAt: Int?
    public var level: String?
    public var message: String?
    public var type: String?
    public var data: JSONValue?
    enum CodingKeys: String, CodingKey { case id, level, message, type, data, createdAt = "created_at" }
}

/// One saved checkpoint of a job (`…/jobs/{id}/checkpoints`).
public struct FineTuningCheckpoint: Codable, Sendable, Equatable {
    public var id: String
    public var stepNumber: Int?
    public var fineTunedModelCheckpoint: String?
    public var metrics: [String: Double]?
    enum CodingKeys: String, CodingKey {
        case id, metrics, stepNumber = "step_number", fineTunedModelCheckpoint = "fine_tuned_model_checkpoint"
    }
}

/// A cursor-paginated list: `data`, `has_more`; the next page is asked for with `after=<last id>`.
public struct ListPage<Item: Codable & Sendable>: Codable, Sendable {
    public var data: [Item]
    public var hasMore: Bool?
    enum CodingKeys: String, CodingKey { case data, hasMore = "has_more" }
}

/// The error body providers send: `{"error": {"message", "type", "code", "param"}}`.
public struct ProviderErrorBody: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var message: String?
        public var type: String?
        public var code: String?
        public var param: String?
    }
    public var error: Detail?
}

// MARK: - Chat completions

public struct ChatMessageBody: Codable, Sendable, Equatable, Hashable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// `POST /v1/chat/completions` body (greedy: temperature 0).
public struct ChatCompletionRequest: Codable, Sendable {
    public var model: String
    public var messages: [ChatMessageBody]
    public var maxTokens: Int?
    public var temperature: Double?
    public var seed: Int?
    enum CodingKeys: String, CodingKey { case model, messages, temperature, seed, maxTokens = "max_tokens" }
}

public struct ChatCompletionResponse: Codable, Sendable {
    public struct Choice: Codable, Sendable {
        public struct Message: Codable, Sendable { public var role: String?; public var content: String? }
        public var index: Int?
        public var message: Message?
        public var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason" }
    }
    public struct Usage: Codable, Sendable {
        public var promptTokens: Int?
        public var completionTokens: Int?
        enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens" }
    }
    public var choices: [Choice]
    public var usage: Usage?
}
