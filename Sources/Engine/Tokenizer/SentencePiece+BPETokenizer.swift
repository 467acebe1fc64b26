// SentencePiece+BPETokenizer — SentencePiece-style BPE as llama.cpp runs it for GGUF
// `tokenizer.ggml.model = llama` (Llama-2, Mistral, TinyLlama, Phi-3, Baichuan …): special tokens are
// cut out of the text first (longest first, every occurrence), each remaining fragment gets a space
// prefix when it starts the input or follows a special token, spaces become U+2581 ("▁"), and the
// characters are merged pairwise, highest token score first (leftmost on ties), until no adjacent pair
// spells a vocab entry; what is left and not in the vocab goes out as `<0xNN>` byte tokens.

/// The SentencePiece-only part of a `BPETokenizer`: scores, token types, byte tokens, special tokens.
struct SentencePieceVocab: Sendable {
    /// GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
    enum TokenType: Int, Sendable {
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// A token cut out of the text before merging (control, user-defined and unknown types).
    struct Special: Sendable {
        var id: Int32
        var bytes: [UInt8]
        /// Control and unknown tokens are matched only with `parseSpecial`; user-defined always.
        var needsParseSpecial: Bool
        /// Whitespace after / before the token is dropped (llama.cpp's RSTRIP / LSTRIP attributes).
        var rstrip: Bool
        var lstrip: Bool
    }

    let scores: [Float]
    /// Vocab string (as UTF-8 bytes) → id; the last of duplicate strings wins, as in llama.cpp.
    let pieceToID: [[UInt8]: Int32]
    /// What each id decodes to: "▁" → " " for normal tokens, the byte for `<0xNN>`, the text for
    /// control / user-defined / unknown tokens, nothing for unused ones.
    let pieceBytes: [[UInt8]]
    /// Id of `<0xNN>` (or, failing that, of the one-byte piece) for each byte; -1 if neither exists.
    let byteIDs: [Int32]
    /// Sorted longest first (then by id), the order llama.cpp partitions in.
    let specials: [Special]
    /// Control tokens (GGUF type 3): `isSpecial`.
    let control: [Bool]
    let addSpacePrefix: Bool
    let unknownID: Int32?

    /// `types[i]` is the GGUF token type of `tokens[i]`; `rstripSpecials` applies llama.cpp's Phi-3 rule
    /// (whitespace after its special tokens is dropped, except after <unk>, <s> and <|endoftext|>).
    init(tokens: [String], scores: [Float], types: [Int], addSpacePrefix: Bool, unknownID: Int32?,
         rstripSpecials: Bool) {
        self.scores = scores
        self.addSpacePrefix = addSpacePrefix
        self.unknownID = unknownID
        var toID: [[UInt8]: Int32] = [:]
        toID.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() { toID[Array(t.utf8)] = Int32(i) }
        pieceToID = toID

        var bytes = [Int32](repeating: -1, count: 256)
        let hex = Array("0123456789ABCDEF".utf8)
        for b in 0..<256 {
            let name: [UInt8] = Array("<0x".utf8) + [hex[b >> 4], hex[b & 15], UInt8(ascii: ">")]
            if let id = toID[name] {
                bytes[b] = id
            } else if b < 0x80, let id = toID[[UInt8(b)]] {
                bytes[b] = id
            }
        }
        byteIDs = bytes

        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(tokens.count)
        var specials: [Special] = []
        for (i, t) in tokens.enumerated() {
            let raw = Array(t.utf8)
            switch TokenType(rawValue: types[i]) {
            case .normal:
                pieces.append(Self.unescapeSpaces(raw))
            case .byte:
                pieces.append(Self.byteValue(raw).map { [$0] } ?? [])
            case .control, .unknown, .userDefined:
                pieces.append(raw)
            case .unused, .undefined, nil:
                pieces.append([])
            }
            guard let type = TokenType(rawValue: types[i]), !raw.isEmpty else { continue }
            switch type {
            case .control, .unknown, .userDefined:
                specials.append(Special(id: Int32(i), bytes: raw, needsParseSpecial: type != .userDefined,
                                        rstrip: rstripSpecials, lstrip: false))
            default:
                break
            }
        }
        if rstripSpecials {
            // llama.cpp (Phi-3): RSTRIP on every special token and "</s>", but not on <unk>, <s>, <|endoftext|>.
            for k in specials.indices {
                switch String(decoding: specials[k].bytes, as: UTF8.self) {
                case "<unk>", "<s>", "<|endoftext|>": specials[k].rstrip = false
                default: break
                }
            }
        }
        specials.sort { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        self.specials = specials
        pieceBytes = pieces
        control = types.map { $0 == TokenType.control.rawValue }
    }

    /// "▁" (E2 96 81) → " ".
    static func unescapeSpaces(_ raw: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            if i + 2 < raw.count && raw[i] == 0xE2 && raw[i + 1] == 0x96 && raw[i + 2] == 0x81 {
                out.append(0x20)
                i += 3
            } else {
                out.append(raw[i])
                i += 1
            }
        }
        return out
    }

    /// The byte of a `<0xNN>` token text.
    static func byteValue(_ raw: [UInt8]) -> UInt8? {
        guard raw.count == 6, raw[0] == UInt8(ascii: "<"), raw[1] == UInt8(ascii: "0"), raw[2] == UInt8(ascii: "x"),
              raw[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: raw[3...4], as: UTF8.self), radix: 16)
    }
}

// MARK: - Encode

extension BPETokenizer {
    /// A piece of the input: raw text (a byte range) or a special token already matched.
    enum Fragment {
        case text(Range<Int>)
        case token(Int32)
    }

    /// llama.cpp's SPM `tokenize` (without BOS/EOS): partition, space prefix, escape, merge.
    func encodeSentencePiece(_ text: String, _ vocab: SentencePieceVocab, parseSpecial: Bool) -> [Int32] {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return [] }
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 1)
        var previousIsSpecial = true
        for fragment in Self.partition(bytes, vocab.specials, parseSpecial: parseSpecial) {
            switch fragment {
            case .token(let id):
                out.append(id)
                previousIsSpecial = true
            case .text(let range):
                var escaped: [UInt8] = []
                escaped.reserveCapacity(range.count + 3)
                if vocab.addSpacePrefix && previousIsSpecial { escaped += [0xE2, 0x96, 0x81] }
                for b in bytes[range] {
                    if b == 0x20 { escaped += [0xE2, 0x96, 0x81] } else { escaped.append(b) }
                }
                var session = SentencePieceSession(text: escaped, vocab: vocab)
                session.tokenize(into: &out)
                previousIsSpecial = false
            }
        }
        return out
    }

    /// llama.cpp's `tokenizer_st_partition`: for each special token, longest first, every occurrence in every
    /// remaining text fragment is cut out (with its LSTRIP / RSTRIP whitespace). Control and unknown tokens
    /// take part only with `parseSpecial`.
    static func partition(_ bytes: [UInt8], _ specials: [SentencePieceVocab.Special], parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = [.text(0..<bytes.count)]
        for special in specials where parseSpecial || !special.needsParseSpecial {
            let needle = special.bytes
            var next: [Fragment] = []
            next.reserveCapacity(fragments.count + 2)
            for fragment in fragments {
                guard case .text(var range) = fragment else {
                    next.append(fragment)
                    continue
                }
                while true {
                    guard let match = find(needle, in: bytes, range) else {
                        if !range.isEmpty { next.append(.text(range)) }
                        break
                    }
                    var leftEnd = match
                    if special.lstrip {
                        while leftEnd > range.lowerBound && isCSpace(bytes[leftEnd - 1]) { leftEnd -= 1 }
                    }
                    if leftEnd > range.lowerBound { next.append(.text(range.lowerBound..<leftEnd)) }
                    next.append(.token(special.id))
                    var rightStart = match + needle.count
                    if special.rstrip {
                        while rightStart < range.upperBound && isCSpace(bytes[rightStart]) { rightStart += 1 }
                    }
                    range = rightStart..<max(rightStart, range.upperBound)
                    if range.isEmpty { break }
                }
            }
            fragments = next
        }
        return fragments
    }

    /// C `isspace` in the "C" locale.
    private static func isCSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    /// First occurrence of `needle` inside `bytes[range]`.
    private static func find(_ needle: [UInt8], in bytes: [UInt8], _ range: Range<Int>) -> Int? {
        let n = needle.count
        guard n > 0, range.count >= n else { return nil }
        let first = needle[0]
        var i = range.lowerBound
        let last = range.upperBound - n
        outer: while i <= last {
            if bytes[i] != first { i += 1; continue }
            for k in 1..<n where bytes[i + k] != needle[k] {
                i += 1
                continue outer
            }
            return i
        }
        return nil
    }
}

// MARK: - Merging

/// One run of llama.cpp's `llm_tokenizer_spm_session` over escaped text.
struct SentencePieceSession {
    struct Symbol {
        var start: Int
        var count: Int
        var prev: Int
        var next: Int
    }

    struct Bigram {
        var left: Int
        var right: Int
        var score: Float
        var size: Int

        /// Pops first: higher score, then the leftmost (llama.cpp's comparator).
        func before(_ o: Bigram) -> Bool { score > o.score || (score == o.score && left < o.left) }
    }

    let text: [UInt8]
    let vocab: SentencePieceVocab
    var symbols: [Symbol] = []
    var queue: [Bigram] = []
    /// Merged text → the symbols it was made of, for `resegment`.
    var reverseMerge: [[UInt8]: (Int, Int)] = [:]

    init(text: [UInt8], vocab: SentencePieceVocab) {
        self.text = text
        self.vocab = vocab
    }

    /// UTF-8 sequence length from the lead byte (continuation bytes count as 1), like `unicode_len_utf8`.
    private static func utf8Length(_ b: UInt8) -> Int {
        switch b >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }

    mutating func tokenize(into out: inout [Int32]) {
        var offset = 0
        while offset < text.count {
            let n = min(Self.utf8Length(text[offset]), text.count - offset)
            let index = symbols.count
            symbols.append(Symbol(start: offset, count: n, prev: index - 1, next: offset + n == text.count ? -1 : index + 1))
            offset += n
        }
        guard !symbols.isEmpty else { return }
        for i in 1..<max(symbols.count, 1) { tryAddBigram(i - 1, i) }

        while let bigram = pop() {
            let left = symbols[bigram.left], right = symbols[bigram.right]
            // One side already merged elsewhere: stale entry.
            if left.count == 0 || right.count == 0 || left.count + right.count != bigram.size { continue }
            symbols[bigram.left].count += right.count
            symbols[bigram.right].count = 0
            symbols[bigram.left].next = right.next
            if right.next >= 0 { symbols[right.next].prev = bigram.left }
            tryAddBigram(symbols[bigram.left].prev, bigram.left)
            tryAddBigram(bigram.left, symbols[bigram.left].next)
        }

        var i = 0
        while i != -1 {
            resegment(i, into: &out, depth: 0)
            i = symbols[i].next
        }
    }

    private func bytes(of s: Symbol) -> [UInt8] { Array(text[s.start..<(s.start + s.count)]) }

    private mutating func tryAddBigram(_ left: Int, _ right: Int) {
        guard left >= 0, right >= 0 else { return }
        let start = symbols[left].start
        let size = symbols[left].count + symbols[right].count
        let piece = Array(text[start..<(start + size)])
        guard let id = vocab.pieceToID[piece], Int(id) < vocab.scores.count else { return }
        push(Bigram(left: left, right: right, score: vocab.scores[Int(id)], size: size))
        reverseMerge[piece] = (left, right)
    }

    /// Emits a final symbol: its token, else the two symbols it was merged from, else its bytes.
    private func resegment(_ index: Int, into out: inout [Int32], depth: Int) {
        let piece = bytes(of: symbols[index])
        if let id = vocab.pieceToID[piece] {
            out.append(id)
            return
        }
        if depth < 64, let (l, r) = reverseMerge[piece] {
            resegment(l, into: &out, depth: depth + 1)
            resegment(r, into: &out, depth: depth + 1)
            return
        }
        for b in piece {
            let id = vocab.byteIDs[Int(b)]
            if id >= 0 { out.append(id) } else if let unk = vocab.unknownID { out.append(unk) }
        }
    }

    // MARK: Priority queue (binary heap ordered by `Bigram.before`)

    private mutating func push(_ b: Bigram) {
        queue.append(b)
        var c = queue.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard queue[c].before(queue[p]) else { break }
            queue.swapAt(c, p)
            c = p
        }
    }

    private mutating func pop() -> Bigram? {
        guard let top = queue.first else { return nil }
        let last = queue.removeLast()
        guard !queue.isEmpty else { return top }
        queue[0] = last
        var p = 0
        while true {
            let l = 2 * p + 1, r = l + 1
            var m = p
            if l < queue.count && queue[l].before(queue[m]) { m = l }
            if r < queue.count && queue[r].before(queue[m]) { m = r }
            if m == p { break }
            queue.swapAt(p, m)
            p = m
        }
        return top
    }
}
