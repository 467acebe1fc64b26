// tune bench ops — GB/s of the elementwise, norm and optimizer kernels vs a memcpy (same run).
import ArgumentParser
import Foundation
import TuneKit

struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "GB/s of rmsnorm, rope, swiglu, add, log-softmax and AdamW vs a STREAM-style copy.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            let r = OpsBench().run { msg in if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) } }
            if global.json { try Output.json(r); return }
            Output.text("\(r.threads) threads, \(r.elements) f32 elements per array")
            Output.text("op                        GB/s   × copy")
            for row in r.rows {
                Output.text(row.op.padding(toLength: 24, withPad: " ", startingAt: 0)
                    + String(format: "%6.1f %8.2f", row.gbPerSecond, row.ofCopy))
            }
        }
    }
}
