// PrepareDedupSplitPackTests — exact and near dedup, seeded split determinism, packing boundaries.
import Foundation
import Testing
import Engine
import TuneKit

@Suite struct PrepareDedupSplitPackTests {
    let doc = "COMMERCIAL INVOICE Invoice no. INV-204512 Date 2025-03-14 Seller Nordhavn Trading ApS Buyer Kobe Precision Tools "
        + "Terms of delivery CIF Rotterdam Payment L/C at sight Description CNC milling inserts HS 8209.00 Quantity 1,200 boxes "
        + "x USD 14.20 = USD 17,040.00 Country of origin DK. We certify this invoice is true and correct and the goods originate there."

    @Test func exactDuplicates() {
        var d = Deduplicator(config: .init())
        let a = RowSource(file: "f", line: 1)
        #expect(d.check("hello world", source: a) == nil)
        #expect(d.check("hello world", source: .init(file: "f", line: 2))?.reason == .duplicate)
        #expect(d.check("hello world", source: .init(file: "f", line: 2))?.original == a)
        // Different whitespace is not an exact duplicate, but the same words are a near one.
        #expect(d.check("hello  world", source: .init(file: "f", line: 3))?.reason == .nearDuplicate)
        var exactOnly = PrepareConfig.Dedup()
        exactOnly.near = nil
        var e = Deduplicator(config: exactOnly)
        #expect(e.check("hello world", source: a) == nil)
        #expect(e.check("hello  world", source: .init(file: "f", line: 3)) == nil)
    }

    @Test func nearDuplicatesRemovedDistinctKept() {
        var cfg = PrepareConfig.Dedup()
        cfg.near?.threshold = 0.8
        var d = Deduplicator(config: cfg)
        #expect(d.check(doc, source: .init(file: "f", line: 1)) == nil)
        // One changed word near the end: most 5-gram shingles survive.
        let near = doc.replacingOccurrences(of: "originate there", with: "originate here")
        let m = d.check(near, source: .init(file: "f", line: 2))
        #expect(m?.reason == .nearDuplicate)
        #expect((m?.similarity ?? 0) >= 0.8)
        // Case and punctuation changes are normalised away.
        #expect(d.check(doc.uppercased(), source: .init(file: "f", line: 3))?.reason == .nearDuplicate)
        // A different document of the same kind is kept.
        let other = "PACKING LIST PL77120 date 2024-11-02 Exporter Saigon Textile Co. Consignee Lyon Silk & Co. Carton 1-12: 12 x "
            + "cotton T-shirts, net 310 kg, gross 332 kg. Total 40 cartons, marks LYON/07, total gross weight 1,204 kg, volume 8.40 CBM"
        #expect(d.check(other, source: .init(file: "f", line: 4)) == nil)
    }

    @Test func thresholdIsRespected() {
        // Similar but below a strict threshold: kept at 0.99, dropped at 0.5.
        let variant = doc.replacingOccurrences(of: "Seller Nordhavn Trading ApS", with: "Seller Andes Coffee Exporters S.A.")
        for (t, dropped) in [(0.99, false), (0.5, true)] {
            var cfg = PrepareConfig.Dedup()
            cfg.near?.threshold = t
            var d = Deduplicator(config: cfg)
            _ = d.check(doc, source: .init(file: "f", line: 1))
            #expect((d.check(variant, source: .init(file: "f", line: 2)) != nil) == dropped, "threshold \(t)")
        }
    }

    @Test func lshShape() {
        let (b, r) = Deduplicator.optimalBands(threshold: 0.9, numPerm: 128)
        #expect(b * r <= 128)
        #expect(b == 9 && r == 14)   // recall-weighted optimum for (0.9, 128)
        #expect(Deduplicator.optimalBands(threshold: 0.9, numPerm: 128, falsePositiveWeight: 0.5, falseNegativeWeight: 0.5) == (5, 25))
        // The S-curve's midpoint (1/b)^(1/r) sits a little below the threshold.
        let mid = pow(1 / Double(b), 1 / Double(r))
        #expect(mid > 0.8 && mid < 0.9)
    }

    @Test func splitIsSeededAndDeterministic() {
        let a = DatasetSplit.evalIndices(count: 1000, fraction: 0.1, seed: 42)
        #expect(a.count == 100)
        #expect(a == DatasetSplit.evalIndices(count: 1000, fraction: 0.1, seed: 42))
        #expect(a != DatasetSplit.evalIndices(count: 1000, fraction: 0.1, seed: 43))
        #expect(Set(a).count == 100 && a.allSatisfy { (0..<1000).contains($0) })
        let (train, eval) = DatasetSplit.split(Array(0..<50), fraction: 0.2, seed: 7)
        #expect(train.count == 40 && eval.count == 10 && Set(train + eval).count == 50)
        #expect(train == train.sorted() && eval == eval.sorted())
        #expect(DatasetSplit.evalIndices(count: 10, fraction: 0, seed: 1).isEmpty)
    }

    @Test func packingBoundaries() {
        func ex(_ n: Int, _ base: Int32) -> DatasetExample {
            DatasetExample(ids: (0..<n).map { base + Int32($0) }, mask: (0..<n).map { UInt8($0 % 2) })
        }
        let rows = [ex(3, 100), ex(4, 200), ex(5, 300), ex(8, 400), ex(2, 500)]
        let packed = SequencePacker.pack(rows, seqLen: 8)
        #expect(packed.map(\.segmentStarts) == [[0, 3], [0], [0], [0]])
        // Greedy in order: [3+4], [5], [8], [2] — 5+8 and 8+2 exceed 8.
        #expect(packed.map(\.ids.count) == [7, 5, 8, 2])
        #expect(packed[0].segmentStarts == [0, 3])
        #expect(packed[0].segments == [0..<3, 3..<7])
        #expect(packed.flatMap(\.ids) == rows.flatMap(\.ids))
        #expect(packed.flatMap(\.mask) == rows.flatMap(\.mask))
        #expect(packed.allSatisfy { $0.ids.count <= 8 })
        let tight = SequencePacker.pack([ex(2, 0), ex(2, 10), ex(2, 20), ex(3, 30)], seqLen: 6)
        #expect(tight.map(\.segmentStarts) == [[0, 2, 4], [0]])
    }
}
