// Pack — greedy sequence packing: rows are concatenated in order into sequences of at most seq_len
// tokens, each remembering where its rows (segments) start so the trainer can block attention across them.
// (`DatasetExample` itself lives in Engine, which the trainer is part of.)

import Engine

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
