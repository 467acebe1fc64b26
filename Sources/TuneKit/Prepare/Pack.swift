// Pack — greedy sequence packing: rows are concatenated in order into sequences of at most seq_len
// tokens, each remembering where its rows (segments) start so the trainer can block attention across them.

/// A training sequence: one row, or several packed rows.
public struct DatasetExample: Sendable, Equatable {
    /// Token ids.
    public var ids: [Int32]
    /// Loss mask, 0 or 1 per token: `mask[t] == 1` means `ids[t]` is a training target, predicted
    /// from positions `< t` (so the loss at position t−1 uses label `ids[t]` when `mask[t] == 1`).
    /// In a packed sequence, a segment's first token has no prediction inside its segment: the
    /// trainer drops that target (chat/alpaca/completion rows start with an untrained header or BOS
    /// anyway; `text` rows start trained).
    public var mask: [UInt8]
    /// Start offset of each segment (row) in `ids`; `[0]` for an unpacked row. Strictly increasing.
    public var segmentStarts: [Int32]

    public init(ids: [Int32], mask: [UInt8], segmentStarts: [Int32] = [0]) {
        self.ids = ids
        self.mask = mask
        self.segmentStarts = segmentStarts
    }

    /// Segment ranges in `ids`.
    public var segments: [Range<Int>] {
        segmentStarts.indices.map { i in
            Int(segmentStarts[i])..<(i + 1 < segmentStarts.count ? Int(segmentStarts[i + 1]) : ids.count)
        }
    }

    public var trainableCount: Int { mask.reduce(0) { $0 + Int($1) } }
}

/// Greedy in-order packing.
public enum SequencePacker {
    /// Packs `rows` in order: a row goes into the current sequence if it still fits in `seqLen`
    /// tokens, else it starts a new one. Rows longer than `seqLen` must be filtered out before
    /// (the stage drops them as `too_long`); here they become a sequence of their own.
    public static func pack(_ rows: [DatasetExample], seqLen: Int) -> [DatasetExample] {
        var out: [DatasetExample] = []
        var cur = DatasetExample(ids: [], mask: [], segmentStarts: [])
        for r in rows {
            if !cur.ids.isEmpty, cur.ids.count + r.ids.count > seqLen {
                out.append(cur)
                cur = DatasetExample(ids: [], mask: [], segmentStarts: [])
            }
            cur.segmentStarts.append(Int32(cur.ids.count))
            cur.ids += r.ids
            cur.mask += r.mask
        }
        if !cur.ids.isEmpty { out.append(cur) }
        return out
    }
}
