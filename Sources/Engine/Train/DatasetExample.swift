// DatasetExample — one training sequence as the prepare stage writes it and the trainer reads it.

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
