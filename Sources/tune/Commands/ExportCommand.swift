// tune export — what tune made, for another runtime: `tune export REF --to llama.cpp|ollama|hf|vllm --out DIR`
// (ModelExport: the files the target loads and the command that serves them), and `tune export adapter` (one
// adapter as llama.cpp's LoRA GGUF or a PEFT directory: AdapterExport). This file maps flags and prints results.
import ArgumentParser
import Foundation
import TuneKit

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export adapters and models for llama.cpp, Ollama, transformers or vLLM.",
        discussion: """
            tune export REF --to TARGET --out DIR writes what TARGET loads and prints the command that serves it:
              llama.cpp  adapter.gguf (LoRA) on the base GGUF, or model.gguf
              ollama     the same plus a Modelfile (FROM, ADAPTER, TEMPLATE, PARAMETER stop)
              hf         an HF model directory (an adapter is merged into its base)
              vllm       adapter/ (PEFT) + the base as an HF directory, or the model as one
            See docs/export.md.
            """,
        subcommands: [Deploy.self, Adapter.self], defaultSubcommand: Deploy.self)

    /// `tune export REF --to TARGET --out DIR` (the default subcommand; also `tune export deploy …`).
    struct Deploy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write what llama.cpp, Ollama, transformers or vLLM loads, and print the command that serves it.")
        @Argument(help: "A registered adapter, merged model or base model (NAME, NAME@VERSION, NAME@alias, sha256:PREFIX), a PEFT adapter directory, a .gguf or an HF model directory.")
        var ref: String
        @Option(help: "llama.cpp, ollama, hf or vllm.") var to: ModelExport.Target
        @Option(help: "Output directory (created; replaced only with --force).") var out: String
        @Option(help: "An adapter's base model (.gguf, HF directory or FAMILY@VERSION); default: the base its record names.") var base: String?
        @Option(help: "Adapter GGUF f32|f16|bf16; model GGUF f16|q8_0|q4_k_m|… (requantized); HF directory float32|float16|bfloat16.")
        var dtype: String?
        @Flag(help: "Merge an adapter into its base and export the model.") var merged = false
        @Option(help: "Name to serve under (Ollama model, vLLM LoRA module); default: the artifact's.") var name: String?
        @Flag(help: "Replace an existing --out.") var force = false
        @OptionGroup var location: ArtifactsCommand.Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                try global.apply()
                let subject = try ModelExport.resolve(ref, registry: location.open)
                let base = try self.base.map { try AdapterExport.resolveBase($0, registry: location.open) }
                let r = try ModelExport.run(.init(subject: subject, target: to, out: out, base: base, dtype: dtype, merged: merged,
                                                  name: name, force: force))
                if global.json { try Output.json(r); return }
                var lines = ["exported \(r.artifact ?? r.source) (\(r.kind)) for \(r.target) to \(r.out): \(r.files.joined(separator: ", "))"]
                if let b = r.base { lines.append("  base   \(b)") }
                for n in r.notes { lines.append("  note   \(n)") }
                lines.append("  serve  \(r.serve)")
                Output.text(lines.joined(separator: "\n"))
            }
        }
    }

    struct Adapter: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a LoRA adapter as a llama.cpp LoRA GGUF (llama-server -m BASE.gguf --lora OUT.gguf) or a PEFT directory.")
        @Argument(help: "A registered adapter (NAME, NAME@VERSION, NAME@alias, sha256:PREFIX) or a PEFT adapter directory.")
        var ref: String
        @Option(help: "gguf (llama.cpp --lora) or peft.") var format: AdapterExport.Format
        @Option(help: "Output: a .gguf file (gguf) or a new directory (peft).") var out: String
        @Option(help: "Base model (.gguf, HF directory or a registered FAMILY@VERSION); default: the base the adapter's record names. Required for gguf from a directory.")
        var base: String?
        @Option(help: "GGUF tensor type: f32 (llama.cpp converter's default), f16 or bf16.") var dtype = "f32"
        @Flag(help: "Replace an existing --out.") var force = false
        @OptionGroup var location: ArtifactsCommand.Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                try global.apply()
                let source = try AdapterExport.resolve(ref, registry: location.open)
                let base = try self.base.map { try AdapterExport.resolveBase($0, registry: location.open) }
                let r = try AdapterExport.run(.init(source: source, format: format, out: out, base: base, dtype: dtype, force: force))
                if global.json { try Output.json(r); return }
                var lines = ["exported \(r.artifact ?? r.adapter) as \(r.format) to \(r.out) (rank \(r.rank), alpha \(r.alpha), \(r.tensors) tensors\(r.dtype.map { ", \($0)" } ?? ""))"]
                if let b = r.base { lines.append("  base   \(b)\(r.architecture.map { " (\($0))" } ?? "")") }
                if let s = r.serve { lines.append("  serve  \(s)") }
                Output.text(lines.joined(separator: "\n"))
            }
        }
    }
}

extension AdapterExport.Format: ExpressibleByArgument {}
extension ModelExport.Target: ExpressibleByArgument {}
