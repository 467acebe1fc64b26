// Template — turns a parsed row into text spans (trainable or not) with the base model's chat template,
// then into token ids plus a loss mask that is 1 exactly on assistant/completion tokens.

import Engine
import Foundation

/// A piece of rendered text and whether its tokens carry loss.
public struct TextSpan: Sendable, Equatable {
    public var text: String
    public var trainable: Bool
    public init(_ text: String, trainable: Bool) {
        self.text = text
        self.trainable = trainable
    }
}

/// A row as model input: token ids and a 0/1 loss mask of the same length.
public struct EncodedRow: Sendable, Equatable {
    public var ids: [Int32]
    public var mask: [UInt8]
    /// Tokens whose bytes straddle a trainable/untrained boundary (BPE merged across it); they are
    /// marked trainable. Zero for ChatML and Llama-3 templates, whose boundaries are special tokens or "\n".
    public var straddling: Int
    public var trainableCount: Int { mask.reduce(0) { $0 + Int($1) } }
}

/// Renders rows with a chat template (or plain concatenation when there is none) and encodes them.
///
///     let r = try RowRenderer(setting: "auto", tokenizer: tok, systemPrompt: nil)
///     let enc = r.encode(.completion(prompt: "2+2?", completion: "4"))   // mask 1 on "4<|im_end|>"
public struct RowRenderer: Sendable {
    /// The chat template, or nil for plain concatenation.
    public let template: ChatTemplate?
    /// "chatml", "llama3", "jinja" (the model's own template) or "none".
    public let templateName: String
    /// Where the template came from: "model" (its `chat_template`), "config" (named) or "none".
    public let templateSource: String
    /// System prompt given to alpaca/completion rows mapped onto chat (nil: the template's default).
    public let systemPrompt: String?
    let tokenizer: BPETokenizer
    let tokenLengths: [Int]
    let eosText: String

    /// - Parameter setting: "auto" (the model's template; plain when it has none), "none", or a
    ///   name from `ChatTemplate.knownNames`.
    public init(setting: String, tokenizer: BPETokenizer, systemPrompt: String? = nil) throws {
        switch setting.lowercased() {
        case "auto":
            if let t = tokenizer.chatTemplate, !t.isEmpty {
                do { template = try ChatTemplate.forModel(tokenizer) } catch let e as EngineError {
                    throw TuneError(.invalidArgument, "template auto: \(e.message)")
                }
                templateSource = "model"
            } else {
                template = nil
                templateSource = "none"
            }
        case "none":
            template = nil
            templateSource = "none"
        default:
            do { template = try ChatTemplate.named(setting) } catch let e as EngineError {
                throw TuneError(.invalidArgument, "template: \(e.message)")
            }
            templateSource = "config"
        }
        templateName = template?.kind.rawValue ?? "none"
        self.systemPrompt = systemPrompt
        self.tokenizer = tokenizer
        tokenLengths = (0..<tokenizer.vocabSize).map { tokenizer.decodeBytes([Int32($0)]).count }
        eosText = tokenizer.eosID.map { tokenizer.token($0) } ?? ""
    }

    // MARK: - Spans

    /// The row as text spans; concatenated they are exactly the text the model sees.
    public func spans(for row: DatasetRow) throws -> [TextSpan] {
        switch row {
        case .chat(let messages):
            guard let template else {
                throw TuneError(.invalidArgument, "chat rows need a chat template, but the model has none; set template to one of \(ChatTemplate.knownNames.joined(separator: ", "))")
            }
            return try chatSpans(messages, template: template)
        case .alpaca(let instruction, let input, let output):
            if let template {
                let user = input.isEmpty ? instruction : instruction + "\n\n" + input
                return try chatSpans(mapped(user: user, assistant: output), template: template)
            }
            var prompt = "### Instruction:\n\(instruction)\n\n"
            if !input.isEmpty { prompt += "### Input:\n\(input)\n\n" }
            prompt += "### Response:\n"
            return [TextSpan(prompt, trainable: false), TextSpan(output + eosText, trainable: true)]
        case .completion(let prompt, let completion):
            if let template { return try chatSpans(mapped(user: prompt, assistant: completion), template: template) }
            return [TextSpan(prompt, trainable: false), TextSpan(completion + eosText, trainable: true)]
        case .text(let text):
            return [TextSpan(text + eosText, trainable: true)]
        }
    }

    private func mapped(user: String, assistant: String) -> [ChatMessage] {
        var m = [ChatMessage(role: "user", content: user), ChatMessage(role: "assistant", content: assistant)]
        if let systemPrompt { m.insert(ChatMessage(role: "system", content: systemPrompt), at: 0) }
        return m
    }

    /// Splits the rendered conversation into trained and untrained spans, for any template. The text is
    /// the whole conversation rendered once (what inference sees). Each assistant turn starts where
    /// `render(before, addGenerationPrompt: true)` ends (that must be a prefix of the whole); it ends
    /// where `render(through it)` ends when that is a prefix too, and is trained through its stop
    /// string. Templates that render a turn differently once later messages follow (Qwen3 drops the
    /// `<think>` block of earlier turns) are not prefix-consistent; there the turn is trained up to and
    /// including the first stop string after its start.
    func chatSpans(_ messages: [ChatMessage], template: ChatTemplate) throws -> [TextSpan] {
        let whole = try render(template, messages, addGenerationPrompt: false)
        let bytes = Array(whole.utf8)
        let stop = template.stopStrings.first.map { Array($0.utf8) }
        var spans: [TextSpan] = []
        var cursor = 0
        func text(_ r: Range<Int>) -> String { String(decoding: bytes[r], as: UTF8.self) }
        func find(_ needle: [UInt8], in r: Range<Int>, last: Bool) -> Range<Int>? {
            guard !needle.isEmpty, r.count >= needle.count else { return nil }
            let starts = stride(from: r.lowerBound, through: r.upperBound - needle.count, by: 1)
            let hit = last ? starts.reversed().first { bytes[$0..<$0 + needle.count].elementsEqual(needle) }
                : starts.first { bytes[$0..<$0 + needle.count].elementsEqual(needle) }
            return hit.map { $0..<$0 + needle.count }
        }
        for (i, m) in messages.enumerated() where m.role == "assistant" {
            let prefix = Array(try render(template, Array(messages[..<i]), addGenerationPrompt: true).utf8)
            guard bytes.starts(with: prefix), prefix.count >= cursor else {
                throw TuneError(.invalidArgument, "template \(templateName): the generation prompt before message \(i) is not a prefix of the rendered conversation, so its assistant span cannot be found")
            }
            let p = prefix.count
            spans.append(TextSpan(text(cursor..<p), trainable: false))
            let full = Array(try render(template, Array(messages[...i]), addGenerationPrompt: false).utf8)
            if full.count >= p, bytes.starts(with: full) {
                if let stop, let r = find(stop, in: p..<full.count, last: true) {
                    spans.append(TextSpan(text(p..<r.upperBound), trainable: true))
                    spans.append(TextSpan(text(r.upperBound..<full.count), trainable: false))
                } else {
                    spans.append(TextSpan(text(p..<full.count), trainable: true))
                }
                cursor = full.count
            } else if let stop, let r = find(stop, in: p..<bytes.count, last: false) {
                spans.append(TextSpan(text(p..<r.upperBound), trainable: true))
                cursor = r.upperBound
            } else {
                throw TuneError(.invalidArgument, "template \(templateName): message \(i) renders differently once later messages follow and the template has no stop string, so its assistant span cannot be found")
            }
        }
        spans.append(TextSpan(text(cursor..<bytes.count), trainable: false))
        return spans.filter { !$0.text.isEmpty }
    }

    private func render(_ template: ChatTemplate, _ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        do { return try template.render(messages, addGenerationPrompt: addGenerationPrompt) } catch let e as EngineError {
            // The template rejected this row's messages (raise_exception or a runtime error): bad data.
            throw TuneError(.badData, "template \(templateName): \(e.message)")
        }
    }

    // MARK: - Encode

    /// Token ids of the whole rendered text (one `encode` call, so ids match inference exactly) and
    /// a mask from byte offsets: a token is trainable when any of its bytes lies in a trainable span.
    /// BOS is prepended (untrained) when the model asks for it and the template does not render it.
    public func encode(spans: [TextSpan]) -> EncodedRow {
        var ranges: [Range<Int>] = []
        var text = ""
        var offset = 0
        for s in spans {
            let n = s.text.utf8.count
            if s.trainable, n > 0 { ranges.append(offset..<offset + n) }
            text += s.text
            offset += n
        }
        var ids = tokenizer.encode(text)
        var mask = [UInt8](repeating: 0, count: ids.count)
        var straddling = 0
        var pos = 0, r = 0
        for (t, id) in ids.enumerated() {
            let len = Int(id) < tokenLengths.count && id >= 0 ? tokenLengths[Int(id)] : 0
            let tok = pos..<pos + len
            while r < ranges.count, ranges[r].upperBound <= tok.lowerBound { r += 1 }
            if r < ranges.count, len > 0, ranges[r].overlaps(tok) {
                mask[t] = 1
                if tok.lowerBound < ranges[r].lowerBound || tok.upperBound > ranges[r].upperBound { straddling += 1 }
            }
            pos += len
        }
        if tokenizer.addBOS, let bos = tokenizer.bosID, !(template?.rendersBOS ?? false) {
            ids.insert(bos, at: 0)
            mask.insert(0, at: 0)
        }
        return EncodedRow(ids: ids, mask: mask, straddling: straddling)
    }

    /// `spans(for:)` then `encode(spans:)`, plus the rendered text (for dedup).
    public func encode(_ row: DatasetRow) throws -> (EncodedRow, String) {
        let s = try spans(for: row)
        return (encode(spans: s), s.map(\.text).joined())
    }
}
