// BPETokenizer — byte-level BPE with id-for-id parity with HF `tokenizers` (GPT-2 / SmolLM / Llama-3
// style vocabularies): added-token splitting, pre-tokenization, rank-ordered merges, byte decoding.
// The same type also runs SentencePiece-style BPE (GGUF `tokenizer.ggml.model = llama`: score-ordered
// merges with `<0xNN>` byte fallback, SentencePiece+BPETokenizer.swift) so every caller holds one type.

/// A BPE tokenizer: byte-level (GPT-2 family) or SentencePiece-style (Llama-2 family). Build it with
/// `init(ggufMetadata:)` or `init(tokenizerJSON:)`.
public struct BPETokenizer: Sendable {
    /// Which BPE algorithm runs.
    public enum Model: String, Sendable {
        /// GPT-2 byte-level BPE: pre-tokenizer regex, merges by rank, bytes spelled as printable scalars.
        case byteLevel
        /// SentencePiece BPE as llama.cpp's `llm_tokenizer_spm`: spaces escaped to U+2581, merges by
        /// token score, characters missing from the vocab as `<0xNN>` byte tokens.
        case sentencePiece
    }

    public let model: Model
    /// Number of ids (highest id + 1).
    public var vocabSize: Int
    public var bosID: Int32?
    public var eosID: Int32?
    public var unknownID: Int32?
    public var paddingID: Int32?
    /// Whether the model expects BOS in front of a prompt. `encode` never adds it; callers do.
    public var addBOS: Bool
    /// Whether the model expects EOS after a sequence (GGUF `tokenizer.ggml.add_eos_token`).
    public var addEOS: Bool
    /// SentencePiece: a space is put in front of text that starts the input or follows a special token
    /// (GGUF `tokenizer.ggml.add_space_prefix`, default true); `decode` drops it again.
    public let addSpacePrefix: Bool
    /// The raw chat template string shipped with the model, if any.
    public var chatTemplate: String?
    /// How text is cut into words before BPE.
    public let preTokenizer: PreTokenizer
    /// HF `ignore_merges`: a word that is itself a vocab entry is emitted whole (Llama-3).
    public let ignoreMerges: Bool

    let tokens: [String]
    let tokenBytes: [[UInt8]]
    let tokenToID: [String: Int32]
    let special: [Bool]
    /// Vocab id of each single-byte token (-1 if absent).
    let byteIDs: [Int32]
    /// (left id << 32 | right id) → merge rank and merged id.
    let merges: [UInt64: Merge]
    let added: AddedTokens
    /// SentencePiece state (nil for byte-level BPE).
    let spm: SentencePieceVocab?

    struct Merge: Sendable {
        var rank: UInt32
        var id: Int32
    }

    /// One token that is split out of the text before pre-tokenization.
    struct AddedToken: Sendable {
        var id: Int32
        var content: String
        var special: Bool
    }

    // MARK: - Init

    /// Builds the tokenizer from vocab strings (index = id), merges ("a", "b") in rank order, and added
    /// tokens. Merges whose parts or result are missing from the vocab are ignored.
    init(tokens: [String], merges mergePairs: [(String, String)], added addedTokens: [AddedToken],
         preTokenizer: PreTokenizer, ignoreMerges: Bool, bosID: Int32?, eosID: Int32?,
         unknownID: Int32?, paddingID: Int32?, addBOS: Bool, chatTemplate: String?,
         addEOS: Bool = false, sentencePiece: SentencePieceVocab? = nil) throws {
        guard !tokens.isEmpty else { throw EngineError(.format, "tokenizer: the vocabulary is empty") }
        self.tokens = tokens
        vocabSize = tokens.count
        var toID: [String: Int32] = [:]
        toID.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where toID[t] == nil { toID[t] = Int32(i) }
        tokenToID = toID
        if let sp = sentencePiece {
            model = .sentencePiece
            tokenBytes = sp.pieceBytes
            byteIDs = sp.byteIDs
            addSpacePrefix = sp.addSpacePrefix
        } else {
            model = .byteLevel
            tokenBytes = tokens.map { ByteLevel.decode($0) ?? Array($0.utf8) }
            var bytes = [Int32](repeating: -1, count: 256)
            for b in 0..<256 { bytes[b] = toID[ByteLevel.encode([UInt8(b)])] ?? -1 }
            byteIDs = bytes
            addSpacePrefix = false
        }
        spm = sentencePiece

        var table: [UInt64: Merge] = [:]
        table.reserveCapacity(mergePairs.count)
        for (rank, (a, b)) in mergePairs.enumerated() {
            guard let l = toID[a], let r = toID[b], let m = toID[a + b] else { continue }
            table[Self.pairKey(l, r)] = Merge(rank: UInt32(rank), id: m)
        }
        merges = table

        var isSpecial = [Bool](repeating: false, count: tokens.count)
        for t in addedTokens {
            guard t.id >= 0, Int(t.id) < tokens.count else {
                throw EngineError(.format, "tokenizer: added token '\(t.content)' has id \(t.id) outside the vocabulary (\(tokens.count))")
            }
            if t.special { isSpecial[Int(t.id)] = true }
        }
        special = sentencePiece?.control ?? isSpecial
        added = AddedTokens(addedTokens)

        for (name, id) in [("bos", bosID), ("eos", eosID), ("unknown", unknownID), ("padding", paddingID)] {
            if let id, id < 0 || Int(id) >= tokens.count {
                throw EngineError(.format, "tokenizer: \(name) token id \(id) is outside the vocabulary (\(tokens.count))")
            }
        }
        self.preTokenizer = preTokenizer
        self.ignoreMerges = ignoreMerges
        self.bosID = bosID
        self.eosID = eosID
        self.unknownID = unknownID
        self.paddingID = paddingID
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.chatTemplate = chatTemplate
    }

    static func pairKey(_ l: Int32, _ r: Int32) -> UInt64 { UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r)) }

    // MARK: - Lookup

    /// The vocab string of `id` ("" for an id outside the vocabulary).
    public func token(_ id: Int32) -> String { id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : "" }

    /// The id of a vocab string, if present.
    public func id(of token: String) -> Int32? { tokenToID[token] }

    /// Whether `id` is a control / special added token (GGUF token_type 3, HF `special: true`).
    public func isSpecial(_ id: Int32) -> Bool { id >= 0 && Int(id) < special.count && special[Int(id)] }

    // MARK: - Encode

    /// Token ids for `text`, without BOS. With `parseSpecial`, special tokens written in the text
    /// (e.g. "<|im_end|>") become their ids; otherwise they are tokenized as plain text.
    /// Non-special added tokens are always split out, as in HF.
    public func encode(_ text: String, parseSpecial: Bool = true) -> [Int32] {
        if let spm { return encodeSentencePiece(text, spm, parseSpecial: parseSpecial) }
        var out: [Int32] = []
        let utf8 = Array(text.utf8)
        out.reserveCapacity(utf8.count / 3 + 1)
        utf8.withUnsafeBufferPointer { buf in
            var segmentStart = 0
            var i = 0
            while i < buf.count {
                if let (length, id) = added.match(buf, at: i, parseSpecial: parseSpecial) {
                    encodeSegment(buf, segmentStart..<i, into: &out)
                    out.append(id)
                    i += length
                    segmentStart = i
                } else {
                    i += 1
                }
            }
            encodeSegment(buf, segmentStart..<buf.count, into: &out)
        }
        return out
    }

    /// Pre-tokenizes and BPE-encodes plain text (no added tokens inside).
    private func encodeSegment(_ buf: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [Int32]) {
        guard !range.isEmpty else { return }
        preTokenizer.split(buf, range) { word in bpe(buf, word, into: &out) }
    }

    /// Applies merges to one word, lowest rank first (leftmost on ties), like HF's `Word::merge_all`.
    private func bpe(_ buf: UnsafeBufferPointer<UInt8>, _ word: Range<Int>, into out: inout [Int32]) {
        if word.count == 1 {
            appendByte(buf[word.lowerBound], into: &out)
            return
        }
        if ignoreMerges, let id = tokenToID[ByteLevel.encode(buf[word])] {
            out.append(id)
            return
        }
        var ids: [Int32] = []
        ids.reserveCapacity(word.count)
        for b in buf[word] { appendByte(b, into: &ids) }
        let n = ids.count
        guard n > 1 else { out.append(contentsOf: ids); return }

        var next = Array(1...n)
        next[n - 1] = -1
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap()
        func push(_ i: Int) {
            let j = next[i]
            guard j >= 0, let m = merges[Self.pairKey(ids[i], ids[j])] else { return }
            heap.push(UInt64(m.rank) << 32 | UInt64(i))
        }
        for i in 0..<(n - 1) { push(i) }
        while let top = heap.pop() {
            let rank = UInt32(top >> 32)
            let i = Int(top & 0xFFFF_FFFF)
            guard alive[i] else { continue }
            let j = next[i]
            guard j >= 0, let m = merges[Self.pairKey(ids[i], ids[j])], m.rank == rank else { continue }
            ids[i] = m.id
            alive[j] = false
            next[i] = next[j]
            if next[j] >= 0 { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        var i = 0
        while i >= 0 {
            out.append(ids[i])
            i = next[i]
        }
    }

    /// The id of a single byte; falls back to the unknown token, else drops it (HF behaviour).
    private func appendByte(_ b: UInt8, into out: inout [Int32]) {
        let id = byteIDs[Int(b)]
        if id >= 0 { out.append(id) } else if let unknownID { out.append(unknownID) }
    }

    // MARK: - Decode

    /// The raw bytes of `ids` (ids outside the vocabulary are skipped). For streaming: the caller
    /// buffers an incomplete UTF-8 tail.
    public func decodeBytes(_ ids: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < tokenBytes.count { out.append(contentsOf: tokenBytes[Int(id)]) }
        return out
    }

    /// The text of `ids`, special tokens included; invalid UTF-8 becomes U+FFFD. SentencePiece with
    /// `addSpacePrefix` drops one leading space of the first piece, as llama.cpp's detokenizer does
    /// (`decodeBytes` keeps it: it is for streaming pieces that continue earlier text).
    public func decode(_ ids: [Int32]) -> String {
        var bytes = decodeBytes(ids)
        if model == .sentencePiece && addSpacePrefix, let first = ids.first, first >= 0, Int(first) < tokenBytes.count,
           tokenBytes[Int(first)].first == 0x20 {
            bytes.removeFirst()
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Token ids for `text` as llama.cpp's `tokenize(text, add_special: true)`: BOS in front when the model
    /// asks for it (`addBOS`), EOS at the end when it asks for that (`addEOS`).
    public func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool = true) -> [Int32] {
        var ids = encode(text, parseSpecial: parseSpecial)
        guard addSpecial else { return ids }
        if addBOS, let bosID { ids.insert(bosID, at: 0) }
        if addEOS, let eosID { ids.append(eosID) }
        return ids
    }
}

// MARK: - Added tokens

/// Leftmost-longest matcher for added tokens over UTF-8 bytes (HF uses Aho-Corasick, LeftmostLongest).
struct AddedTokens: Sendable {
    /// Per first byte: candidates, longest first.
    private var buckets: [[(bytes: [UInt8], id: Int32, special: Bool)]]

    init(_ tokens: [BPETokenizer.AddedToken]) {
        buckets = Array(repeating: [], count: 256)
        for t in tokens where !t.content.isEmpty {
            let bytes = Array(t.content.utf8)
            buckets[Int(bytes[0])].append((bytes, t.id, t.special))
        }
        for b in 0..<256 { buckets[b].sort { $0.bytes.count > $1.bytes.count } }
    }

    /// The longest added token starting at `i`, as (byte length, id).
    func match(_ buf: UnsafeBufferPointer<UInt8>, at i: Int, parseSpecial: Bool) -> (Int, Int32)? {
        let candidates = buckets[Int(buf[i])]
        guard !candidates.isEmpty else { return nil }
        outer: for c in candidates where parseSpecial || !c.special {
            guard i + c.bytes.count <= buf.count else { continue }
            for k in 1..<c.bytes.count where buf[i + k] != c.bytes[k] { continue outer }
            return (c.bytes.count, c.id)
        }
        return nil
    }
}

// MARK: - Heap

/// A binary min-heap of packed (rank << 32 | position) keys.
struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ v: UInt64) {
        items.append(v)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard items[c] < items[p] else { break }
            items.swapAt(c, p)
            c = p
        }
    }

    mutating func pop() -> UInt64? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var p = 0
        while true {
            let l = 2 * p + 1, r = l + 1
            var m = p
            if l < items.count && items[l] < items[m] { m = l }
            if r < items.count && items[r] < items[m] { m = r }
            if m == p { break }
            items.swapAt(p, m)
            p = m
        }
        return top
    }
}
