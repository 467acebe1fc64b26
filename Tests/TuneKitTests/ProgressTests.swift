// ProgressTests — human ETAs ("4m10s", not "250s"), the progress arithmetic, the meter's throttling,
// and base hashing reporting to ProgressSink.
import Engine
import Foundation
import Testing
import TuneKit

private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(StageKind?, ProgressUpdate)] = []
    func add(_ s: StageKind?, _ u: ProgressUpdate) { lock.lock(); items.append((s, u)); lock.unlock() }
    var all: [(StageKind?, ProgressUpdate)] { lock.lock(); defer { lock.unlock() }; return items }
}

@Suite struct ProgressTests {
    @Test func humanDurations() {
        #expect(humanDuration(250) == "4m10s")
        #expect(humanDuration(59.6) == "1m00s")
        #expect(humanDuration(12) == "12s")
        #expect(humanDuration(0) == "0s")
        #expect(humanDuration(0.4) == "0.4s")
        #expect(humanDuration(3725) == "1h02m")
        #expect(humanDuration(2 * 86_400 + 3 * 3600 + 59) == "2d03h")
        #expect(humanDuration(-1) == "?")
        #expect(humanDuration(.nan) == "?")
        #expect(humanDuration(.infinity) == "?")
    }

    @Test func rateEtaAndText() {
        let u = ProgressUpdate(task: "eval", subject: "base", done: 40, total: 80, unit: "examples", elapsed: 20)
        #expect(u.rate == 2)
        #expect(u.eta == 20)
        #expect(u.text == "base: 40/80 examples, 2.00 examples/s, ETA 20s")
        let slow = ProgressUpdate(task: "eval", subject: "adapter", done: 10, total: 260, unit: "examples", elapsed: 10)
        #expect(slow.text.hasSuffix("ETA 4m10s"), "\(slow.text)")
        let end = ProgressUpdate(task: "hash", subject: "m.gguf", done: 100e6, total: 100e6, unit: "bytes", elapsed: 0.5)
        #expect(end.text == "m.gguf: 100/100 MB, 200 MB/s in 0.5s")
        let start = ProgressUpdate(task: "merge", done: 0, total: 10, unit: "tensors", elapsed: 0)
        #expect(start.rate == nil && start.eta == nil && start.text == "0/10 tensors")
        let early = ProgressUpdate(task: "prepare", done: 1, total: 400, unit: "lines", elapsed: 0.00001)
        #expect(early.rate == nil && early.eta == nil, "no rate from one line in microseconds")
    }

    @Test func meterEmitsFirstThrottledAndLast() {
        let m = ProgressMeter(task: "eval", total: 1000, unit: "examples", interval: 3600)
        var emitted: [Double] = []
        for i in 0...1000 { if let u = m.tick(Double(i)) { emitted.append(u.done) } }
        #expect(emitted == [0, 1000])
        let every = ProgressMeter(task: "eval", total: 3, unit: "examples", interval: 0)
        #expect((0...3).compactMap { every.tick(Double($0))?.done } == [0, 1, 2, 3])
        #expect(every.tick(3) == nil, "the finished state is emitted once")
    }

    @Test func hashingALargeFileReportsBytes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-progress-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let big = dir.appendingPathComponent("base.gguf").path
        let size = Int(FileHashCache.progressThreshold) + 12_345
        #expect(FileManager.default.createFile(atPath: big, contents: Data(count: size)))
        let small = dir.appendingPathComponent("data.jsonl").path
        try "{}\n".write(toFile: small, atomically: true, encoding: .utf8)
        let got = Collected()
        let cache = FileHashCache(file: nil)
        let hex = try ProgressSink.withSink({ got.add($0, $1) }) {
            _ = try cache.sha256(small)                 // small: no progress
            return try cache.sha256(big)
        }
        #expect(hex == (try SHA256.hashFile(big)))
        let updates = got.all
        #expect(updates.count >= 2, "\(updates.map(\.1))")
        #expect(updates.allSatisfy { $0.0 == nil && $0.1.task == "hash" && $0.1.subject == "base.gguf" && $0.1.unit == "bytes" })
        #expect(updates.first?.1.done == 0 && updates.last?.1.done == Double(size) && updates.last?.1.total == Double(size))
        // Memoized: the second look-up reads nothing and reports nothing.
        let again = Collected()
        _ = try ProgressSink.withSink({ again.add($0, $1) }) { try cache.sha256(big) }
        #expect(again.all.isEmpty)
    }
}
