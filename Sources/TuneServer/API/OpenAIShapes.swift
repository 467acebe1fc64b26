// OpenAIShapes — the JSON objects of OpenAI's files, fine-tuning, models and chat APIs, field for field,
// so the official SDK and tune's managed client parse them unchanged. Swift names, ecosystem keys.

import Foundation

/// `{"object": "list", "data": [...], "has_more": false}`.
struct ListPage<T: Encodable>: Encodable {
    var object = "list"
    var data: [T]
    var hasMore: Bool
    var firstID: String?
    var lastID: String?
    init(data: [T], hasMore: Bool = false, ids: [String]? = nil) {
        self.data = data
        self.hasMore = hasMore
        self.firstID = ids?.first
        self.lastID = ids?.last
    }
    enum CodingKeys: String, CodingKey { case object, data, hasMore = "has_more", firstID = "first_id", lastID = "last_id" }
}

// MARK: - Files

struct FileObject: Codable, Sendable, Equatable {
    var id: String
    var object = "file"
    var bytes: Int
    var createdAt: Int
    var filename: String
    var purpose: String
    var status = "processed"
    var statusDetails: String? = nil
    enum CodingKeys: String, CodingKey {
        case id, object, bytes, createdAt = "created_at", filename, purpose, status, statusDetails = "status_details"
    }
}

struct DeletedObject: Encodable {
    var id: String
    var object: String
    var deleted = true
}

// MARK: - Fine-tuning

/// A hyperparameter given as a number or `"auto"`.
enum AutoOr<T: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    case auto
    case value(T)
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            guard s == "auto" else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected \"auto\" or a number, got \"\(s)\"")
            }
            self = .auto
        } else { self = .value(try c.decode(T.self)) }
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .auto: try c.encode("auto")
        case .value(let v): try c.encode(v)
        }
    }
    var value: T? { if case .value(let v) = self { v } else { nil } }
}

struct Hyperparameters: Codable, Sendable, Equatable {
    var nEpochs: AutoOr<Int>?
    var batchSize: AutoOr<Int>?
    var learningRateMultiplier: AutoOr<Double>?
    enum CodingKeys: String, CodingKey {
        case nEpochs = "n_epochs", batchSize = "batch_size", learningRateMultiplier = "learning_rate_multiplier"
    }
}

/// `POST /v1/fine_tuning/jobs` body. `method` ({"type": "supervised", "supervised": {"hyperparameters"}})
/// is accepted as the newer spelling of `hyperparameters`.
struct CreateJobRequest: Decodable, Sendable {
    var model: String
    var trainingFile: String
    var validationFile: String?
    var hyperparameters: Hyperparameters?
    var suffix: String?
    var seed: Int?
    var metadata: [String: String]?
    var method: Method?

    struct Method: Decodable, Sendable {
        var type: String
        var supervised: Supervised?
        struct Supervised: Decodable, Sendable { var hyperparameters: Hyperparameters? }
    }
    enum CodingKeys: String, CodingKey {
        case model, trainingFile = "training_file", validationFile = "validation_file", hyperparameters, suffix, seed, metadata, method
    }
}

struct JobError: Codable, Sendable, Equatable {
    var code: String
    var message: String
    var param: String?
}

enum JobStatus: String, Codable, Sendable, CaseIterable {
    case validatingFiles = "validating_files", queued, running, succeeded, failed, cancelled
    var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// The resolved hyperparameters a job trains with (always numbers once the job exists).
struct ResolvedHyperparameters: Codable, Sendable, Equatable {
    var nEpochs: Int
    var batchSize: Int
    var learningRateMultiplier: Double
    enum CodingKeys: String, CodingKey {
        case nEpochs = "n_epochs", batchSize = "batch_size", learningRateMultiplier = "learning_rate_multiplier"
    }
}

struct FineTuningJob: Codable, Sendable {
    var id: String
    var object = "fine_tuning.job"
    var model: String
    var createdAt: Int
    var finishedAt: Int?
    var fineTunedModel: String?
    var organizationID = "org-tune"
    var resultFiles: [String] = []
    var status: JobStatus
    var trainingFile: String
    var validationFile: String?
    var hyperparameters: ResolvedHyperparameters
    var trainedTokens: Int?
    var error: JobError?
    var seed: Int
    var suffix: String?
    var metadata: [String: String]?
    var estimatedFinish: Int? = nil
    var integrations: [String] = []
    var method: JobMethod { JobMethod(supervised: .init(hyperparameters: hyperparameters)) }

    struct JobMethod: Codable, Sendable {
        var type = "supervised"
        var supervised: Supervised
        struct Supervised: Codable, Sendable { var hyperparameters: ResolvedHyperparameters }
    }

    enum CodingKeys: String, CodingKey {
        case id, object, model, createdAt = "created_at", finishedAt = "finished_at", fineTunedModel = "fine_tuned_model"
        case organizationID = "organization_id", resultFiles = "result_files", status, trainingFile = "training_file"
        case validationFile = "validation_file", hyperparameters, trainedTokens = "trained_tokens", error, seed
        case suffix = "user_provided_suffix", metadata, estimatedFinish = "estimated_finish", integrations
    }
    private enum ExtraKeys: String, CodingKey { case method }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(model, forKey: .model)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(finishedAt, forKey: .finishedAt)          // null, not absent: the SDK's fields are Optional but present
        try c.encode(fineTunedModel, forKey: .fineTunedModel)
        try c.encode(organizationID, forKey: .organizationID)
        try c.encode(resultFiles, forKey: .resultFiles)
        try c.encode(status, forKey: .status)
        try c.encode(trainingFile, forKey: .trainingFile)
        try c.encode(validationFile, forKey: .validationFile)
        try c.encode(hyperparameters, forKey: .hyperparameters)
        try c.encode(trainedTokens, forKey: .trainedTokens)
        try c.encode(error, forKey: .error)
        try c.encode(seed, forKey: .seed)
        try c.encode(suffix, forKey: .suffix)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(estimatedFinish, forKey: .estimatedFinish)
        try c.encode(integrations, forKey: .integrations)
        var extra = encoder.container(keyedBy: ExtraKeys.self)
        try extra.encode(method, forKey: .method)
    }
}

struct JobEvent: Codable, Sendable {
    var id: String
    var object = "fine_tuning.job.event"
    var createdAt: Int
    var level: String
    var message: String
    var type: String
    var data: [String: Double]?
    enum CodingKeys: String, CodingKey { case id, object, createdAt = "created_at", level, message, type, data }
}

struct JobCheckpoint: Codable, Sendable {
    var id: String
    var object = "fine_tuning.job.checkpoint"
    var createdAt: Int
    var fineTunedModelCheckpoint: String
    var stepNumber: Int
    var metrics: [String: Double]
    var fineTuningJobID: String
    enum CodingKeys: String, CodingKey {
        case id, object, createdAt = "created_at", fineTunedModelCheckpoint = "fine_tuned_model_checkpoint"
        case stepNumber = "step_number", metrics, fineTuningJobID = "fine_tuning_job_id"
    }
}

// MARK: - Models

struct ModelObject: Encodable {
    var id: String
    var object = "model"
    var created: Int
    var ownedBy: String
    enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
}

// MARK: - Chat

struct ChatRequest: Decodable, Sendable {
    var model: String
    var messages: [Message]
    var maxTokens: Int?
    var maxCompletionTokens: Int?
    var temperature: Double?
    var topP: Double?
    var seed: Int?
    var stop: Stop?
    var stream: Bool?
    var streamOptions: StreamOptions?
    var n: Int?
    var logitBias: [String: Double]?

    struct StreamOptions: Decodable, Sendable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    struct Message: Decodable, Sendable {
        var role: String
        var content: Content?
    }
    /// `content` as a string or as OpenAI's array of `{"type": "text", "text": …}` parts.
    enum Content: Decodable, Sendable {
        case text(String)
        case parts([Part])
        struct Part: Decodable, Sendable { var type: String; var text: String? }
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s) } else { self = .parts(try c.decode([Part].self)) }
        }
    }
    /// `stop` as one string or a list of up to 4.
    enum Stop: Decodable, Sendable {
        case one(String), many([String])
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .one(s) } else { self = .many(try c.decode([String].self)) }
        }
        var strings: [String] { switch self { case .one(let s): [s]; case .many(let a): a } }
    }
    enum CodingKeys: String, CodingKey {
        case model, messages, maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", temperature
        case topP = "top_p", seed, stop, stream, streamOptions = "stream_options", n, logitBias = "logit_bias"
    }
}

/// OpenAI's `logit_bias`: token ids (as JSON object keys) to a bias in [-100, 100] added to their logits.
enum LogitBias {
    static func parse(_ bias: [String: Double]?, vocabSize: Int) throws -> [Int32: Float] {
        var out: [Int32: Float] = [:]
        for (key, value) in bias ?? [:] {
            guard let id = Int32(key), id >= 0, Int(id) < vocabSize else {
                throw APIError.invalid("logit_bias: '\(key)' is not a token id of this model (0..<\(vocabSize)).", param: "logit_bias")
            }
            guard value.isFinite, (-100...100).contains(value) else {
                throw APIError.invalid("logit_bias: the bias of token \(key) must be in [-100, 100], got \(value).", param: "logit_bias")
            }
            out[id] = Float(value)
        }
        return out
    }
}

struct Usage: Codable, Sendable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int
    enum CodingKeys: String, CodingKey { case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens" }
}

struct ChatCompletion: Encodable {
    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
    var systemFingerprint: String?
    /// A routed answer: where it came from (tune's extension; the SDKs keep unknown fields).
    var tuneRoute: RouteInfo? = nil
    struct Choice: Encodable {
        var index = 0
        var message: Message
        var finishReason: String
        var logprobs: String? = nil
        enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason", logprobs }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(message, forKey: .message)
            try c.encode(finishReason, forKey: .finishReason)
            try c.encodeNil(forKey: .logprobs)
        }
    }
    struct Message: Encodable { var role = "assistant"; var content: String }
    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices, usage, systemFingerprint = "system_fingerprint", tuneRoute = "tune_route"
    }
}

/// `tune_route` of a routed chat completion: the router, the route taken, the confidence against τ, and
/// why the reference was not used when it was escalated to and failed.
struct RouteInfo: Encodable, Sendable {
    var router: String
    var route: String
    var confidence: Double?
    var tau: Double?
    var policy: String
    var local: String
    var reference: String
    var reason: String?
}

struct ChatChunk: Encodable {
    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
    var tuneRoute: RouteInfo? = nil
    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage, tuneRoute = "tune_route" }
    struct Choice: Encodable {
        var index = 0
        var delta: Delta
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, delta, finishReason = "finish_reason" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(finishReason, forKey: .finishReason)
        }
    }
    struct Delta: Encodable { var role: String?; var content: String? }
}
