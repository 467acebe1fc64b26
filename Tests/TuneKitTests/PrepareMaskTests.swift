// PrepareMaskTests — the loss mask is 1 exactly on assistant/completion tokens plus the end-of-turn
// token, for every format, on the tiny model and (when present) on the real SmolLM2 tokenizer.
import Foundation
import Testing
import Engine
import TuneKit

@Suite struct PrepareMaskTests {
    let tok = PrepareFixtures.tiny.tokenizer

    /// Decoded text of the masked (trainable) tokens and of the untrained ones.
    func split(_ e: EncodedRow, _ t: BPETokenizer) -> (trained: String, untrained: String) {
        let on = zip(e.ids, e.mask).filter { $0.1 == 1 }.map(\.0)
        let off = zip(e.ids, e.mask).filter { $0.1 == 0 }.map(\.0)
        return (t.decode(on), t.decode(off))
    }

    @Test func chatMaskIsAssistantContentPlusImEnd() throws {
        let r = try RowRenderer(setting: "auto", tokenizer: tok)
        #expect(r.templateName == "chatml")
        let row = DatasetRow.chat([.init(role: "user", content: "What is 2+2?"), .init(role: "assistant", content: "Four, in the end."),
                                   .init(role: "user", content: "And 3+3?"), .init(role: "assistant", content: "Six.")])
        let (enc, text) = try r.encode(row)
        #expect(enc.ids == tok.encode(text), "ids must equal the whole-string tokenization")
        let s = split(enc, tok)
        #expect(s.trained == "Four, in the end.<|im_end|>Six.<|im_end|>")
        #expect(s.untrained.hasPrefix("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"))
        #expect(s.untrained.hasSuffix("<|im_start|>assistant\n\n"))
        #expect(enc.straddling == 0)
    }

    @Test func alpacaAndCompletionMapOntoChat() throws {
        let r = try RowRenderer(setting: "auto", tokenizer: tok)
        let (a, at) = try r.encode(.alpaca(instruction: "Classify the document.", input: "INVOICE 42", output: "commercial_invoice"))
        #expect(split(a, tok).trained == "commercial_invoice<|im_end|>")
        #expect(at.contains("<|im_start|>user\nClassify the document.\n\nINVOICE 42<|im_end|>"))
        let (c, _) = try r.encode(.completion(prompt: "2+2=", completion: " 4"))
        #expect(split(c, tok).trained == " 4<|im_end|>")
    }

    @Test func systemPromptOverridesTemplateDefault() throws {
        let r = try RowRenderer(setting: "auto", tokenizer: tok, systemPrompt: "Answer with one label.")
        let (_, text) = try r.encode(.completion(prompt: "p", completion: "c"))
        #expect(text.hasPrefix("<|im_start|>system\nAnswer with one label.<|im_end|>\n<|im_start|>user\np"))
    }

    @Test func plainConcatenationWithoutTemplate() throws {
        let r = try RowRenderer(setting: "none", tokenizer: tok)
        let (c, ct) = try r.encode(.completion(prompt: "Q: 2+2?\nA:", completion: " 4"))
        #expect(ct == "Q: 2+2?\nA: 4<|im_end|>")        // the tiny model's EOS is <|im_end|>
        #expect(split(c, tok).trained == " 4<|im_end|>")
        let (t, _) = try r.encode(.text("all of it"))
        #expect(t.mask.allSatisfy { $0 == 1 })
        let (a, at) = try r.encode(.alpaca(instruction: "Do it.", input: "", output: "Done."))
        #expect(at == "### Instruction:\nDo it.\n\n### Response:\nDone.<|im_end|>")
        #expect(split(a, tok).trained == "Done.<|im_end|>")
        #expect(throws: TuneError.self) { try r.encode(.chat([.init(role: "user", content: "u"), .init(role: "assistant", content: "a")])) }
    }

    @Test func llama3TemplateMask() throws {
        let r = try RowRenderer(setting: "llama3", tokenizer: tok)
        let (e, _) = try r.encode(.chat([.init(role: "user", content: "hi"), .init(role: "assistant", content: "  hello there \n")]))
        // Llama-3 trims content; the trained part is the trimmed content and <|eot_id|> (bytes here: no such special token).
        #expect(split(e, tok).trained == "hello there<|eot_id|>")
    }

    /// On the real tokenizer: every sample row's piecewise tokenization (each span alone) equals
    /// the whole-string tokenization, and the trained tokens are exactly "label<|im_end|>".
    @Test(.enabled(if: PrepareFixtures.hasRealModel)) func realTokenizerPiecewiseEqualsWhole() throws {
        let dt = try DatasetTokenizer.load(modelPath: PrepareFixtures.realModel)
        let t = dt.tokenizer
        let r = try RowRenderer(setting: "auto", tokenizer: t)
        for file in ["train.jsonl", "eval.jsonl"] {
            let fr = try JSONLReader.read(path: PrepareFixtures.shippingDocs.appendingPathComponent(file).path, format: .auto)
            for line in fr.lines {
                let row = try line.result.get()
                guard case .chat(let m) = row else { Issue.record("\(line.source) is not chat"); continue }
                let spans = try r.spans(for: row)
                let piecewise = spans.flatMap { t.encode($0.text) }
                let enc = r.encode(spans: spans)
                #expect(piecewise == enc.ids, "\(line.source): a BPE merge crosses a span boundary")
                #expect(split(enc, t).trained == m.last!.content + "<|im_end|>", "\(line.source)")
                #expect(enc.straddling == 0)
            }
        }
    }
}
