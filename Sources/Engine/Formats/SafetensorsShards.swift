// SafetensorsShards — how an HF checkpoint is split into shards, as transformers' save_pretrained splits it
// (huggingface_hub's split_torch_state_dict_into_shards): tensors in order, a new shard when the next tensor
// would take the current one past the limit (default "5GB" = 5·10^9 bytes), a tensor bigger than the limit in a
// shard of its own; files model-0000k-of-0000N.safetensors and model.safetensors.index.json mapping each tensor
// to its file. One shard is written as model.safetensors without an index. HFModelDirectory reads both layouts.

import Foundation

public enum SafetensorsShards {
    /// transformers' default `max_shard_size` ("5GB").
    public static let defaultMaxBytes = 5_000_000_000

    /// Tensor indices (into `sizes`, in order) of each shard.
    public static func plan(sizes: [Int], maxBytes: Int) -> [[Int]] {
        var shards: [[Int]] = [], current: [Int] = [], currentBytes = 0
        for (i, size) in sizes.enumerated() {
            if size > maxBytes {
                if !current.isEmpty { shards.append(current) }
                shards.append([i])
                current = []
                currentBytes = 0
                continue
            }
            if currentBytes + size > maxBytes && !current.isEmpty {
                shards.append(current)
                current = []
                currentBytes = 0
            }
            current.append(i)
            currentBytes += size
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }
        return shards
    }

    /// The file name of shard `index` (1-based) of `count`: "model-00001-of-00003.safetensors"; a single
    /// shard is "model.safetensors".
    public static func fileName(_ index: Int, of count: Int) -> String {
        guard count > 1 else { return "model.safetensors" }
        func five(_ n: Int) -> String { String(repeating: "0", count: max(0, 5 - String(n).count)) + String(n) }
        return "model-\(five(index))-of-\(five(count)).safetensors"
    }

    /// model.safetensors.index.json: {"metadata": {"total_size": bytes of tensor data}, "weight_map": {tensor:
    /// file}}, tensors sorted by name as transformers writes them.
    public static func indexJSON(totalSize: Int, weightMap: [String: String]) -> Data {
        OrderedJSON.object([
            ("metadata", .object([("total_size", .int(totalSize))])),
            ("weight_map", .object(weightMap.keys.sorted().map { ($0, OrderedJSON.string(weightMap[$0]!)) })),
        ]).data()
    }
}
