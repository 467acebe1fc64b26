// tune export — an adapter for another runtime: llama.cpp's LoRA GGUF (`--lora`) or the PEFT directory.
// The work is AdapterExport (TuneKit); this file maps flags and prints the result.
import ArgumentParser
import Foundation
import TuneKit

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export artifacts for other runtimes (llama.cpp LoRA GGUF, PEFT).",
        discussion: "See docs/export.md.",
        subcommands: [Adapter.self])

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
