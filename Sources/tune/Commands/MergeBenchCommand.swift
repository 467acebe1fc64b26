// tune bench merge — TIES of three random rank-8 adapters into the real model: seconds and peak RSS.
import ArgumentParser
import Foundation
import TuneKit

struct BenchMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "Merge throughput: TIES of 3 random rank-8 adapters (7 targets) into the model, seconds and peak RSS.")
    @Option(help: "Base model (.gguf).") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Density per adapter.") var density = 0.5
    @Option(help: "GGUF type of the merged matrices.") var dtype = "q8_0"
    @Option(help: .hidden) var workerOut: String?
    @Option(help: .hidden) var workerAdapter: [String] = []
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            var bench = MergeBench()
            bench.modelPath = model
            bench.density = density
            bench.dtype = dtype
            if let workerOut {
                try Output.json(try bench.work(adapterDirs: workerAdapter, out: workerOut))
                return
            }
            let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let r = try bench.run(executable: exe) { msg in
                if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) }
            }
            if global.json { try Output.json(r); return }
            Output.text("model \(r.model), TIES of \(r.adapters) rank-\(r.rank) adapters, density \(r.density), output gguf \(r.dtype)")
            for m in r.results {
                Output.text(m.name.padding(toLength: 36, withPad: " ", startingAt: 0)
                    + String(format: "%8.2f s %8.2f GiB peak RSS, %d tensors merged", m.seconds, Double(m.peakRSSBytes) / 1_073_741_824, m.tensorsMerged))
            }
            Output.text(r.note)
        }
    }
}
