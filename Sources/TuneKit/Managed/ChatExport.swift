// ChatExport — a prepared dataset's rows back as chat messages, for providers that take chat-format
// JSONL (`{"messages":[{"role","content"},…]}`) instead of token shards. Each row (packed segment) is
// decoded with the tokenizer that prepared it and split into turns by the template it was rendered
// with: ChatML and Llama-3 by their turn markers; without a template the untrained text is the user
// turn and the trained text (minus EOS) the assistant turn, exactly as the loss mask marks them.

import Engine
import Foundation

public enum ChatExport {
    /// The messages of every row of `examples`, in order. Rows with no assistant turn are left out.
    public static func conversations(_ examples: [DatasetExample], tokenizer: BPETokenizer, template: String) -> [[ChatMessageBody]] {
        examples.flatMap { e in
            e.segments.compactMap { seg -> [ChatMessageBody]? in
                let m = messages(ids: Array(e.ids[seg]), mask: Array(e.mask[seg]), tokenizer: tokenizer, template: template)
                return m.contains { $0.role == "assistant" } ? m : nil
            }
        }
    }

    /// One row's messages.
    public static func messages(ids: [Int32], mask: [UInt8], tokenizer: BPETokenizer, template: String) -> [ChatMessageBody] {
        switch template {
        case "chatml": return turns(tokenizer.decode(ids), #"<\|im_start\|>([^\n<]+)\n(.*?)<\|im_end\|>"#)
        case "llama3": return turns(tokenizer.decode(ids), #"<\|start_header_id\|>([^<]+)<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>"#)
        default:
            // Runs of equal mask: untrained → user, trained → assistant.
            let eos = tokenizer.eosID, bos = tokenizer.bosID
            var out: [ChatMessageBody] = [], i = 0
            while i < ids.count {
                var j = i
                while j < ids.count, mask[j] == mask[i] { j += 1 }
                let run = ids[i..<j].filter { $0 != eos && $0 != bos }
                let text = tokenizer.decode(Array(run))
                if !text.isEmpty { out.append(ChatMessageBody(role: mask[i] != 0 ? "assistant" : "user", content: text)) }
                i = j
            }
            return out
        }
    }

    private static func turns(_ text: String, _ pattern: String) -> [ChatMessageBody] {
        guard let re = try? NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators]) else { return [] }
        let ns = text as NSString
        return re.matches(in: text, range: NSRange(location: 0, length: ns.length)).map {
            ChatMessageBody(role: ns.substring(with: $0.range(at: 1)), content: ns.substring(with: $0.range(at: 2)))
        }
    }

    /// Chat-format JSONL: one `{"messages":[…]}` object per line.
    public static func jsonl(_ conversations: [[ChatMessageBody]]) throws -> Data {
        struct Line: Encodable { var messages: [ChatMessageBody] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out = Data()
        for c in conversations {
            out.append(try encoder.encode(Line(messages: c)))
            out.append(0x0A)
        }
        return out
    }
}
