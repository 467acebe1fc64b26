// PreTokenizer — splits text into BPE words exactly like HF `tokenizers` (Digits + ByteLevel regex,
// or the Llama-3 / Qwen2 / Qwen3.5 Split regexes), with a hand-written scanner over unicode scalars
// instead of a regex.

/// How text is cut into words before BPE. Matches the HF pre-tokenizers byte for byte.
public struct PreTokenizer: Sendable, Equatable {
    /// The word-splitting regex, as a scanner.
    public enum Pattern: String, Sendable {
        /// GPT-2 / ByteLevel(use_regex=true):
        /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
        case gpt2
        /// Llama-3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
        /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
        case llama3
        /// Qwen2 / Qwen2.5 / Qwen3: the Llama-3 pattern with single digits (`\p{N}` instead of `\p{N}{1,3}`).
        case qwen2
        /// Qwen3.5: the Qwen2 pattern with marks joining letters: `[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+` and
        /// ` ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*` (scanned as Qwen2 with \p{M} classed as a letter, which matches
        /// the same spans: \p{M} only ever appears next to \p{L} in that regex).
        case qwen35
    }

    /// HF `Digits(individual_digits: true)` first: every \p{N} scalar becomes its own piece.
    public var splitDigits: Bool
    public var pattern: Pattern

    public init(splitDigits: Bool, pattern: Pattern) {
        self.splitDigits = splitDigits
        self.pattern = pattern
    }

    /// The GGUF `tokenizer.ggml.pre` names this scanner implements.
    public static let knownGGUFNames = [
        "smollm", "starcoder", "refact", "command-r", "gpt-2", "mpt", "llama-bpe", "llama3", "llama-v3",
        "qwen2", "deepseek-r1-qwen", "qwen35",
    ]

    /// The pre-tokenizer for a GGUF `tokenizer.ggml.pre` value; unknown names throw.
    public static func gguf(_ name: String) throws -> PreTokenizer {
        switch name {
        // llama.cpp: `\p{N}` then the GPT-2 regex (LLAMA_VOCAB_PRE_TYPE_STARCODER / REFACT / COMMAND_R / SMOLLM).
        case "smollm", "starcoder", "refact", "command-r": return PreTokenizer(splitDigits: true, pattern: .gpt2)
        case "gpt-2", "mpt": return PreTokenizer(splitDigits: false, pattern: .gpt2)
        case "llama-bpe", "llama3", "llama-v3": return PreTokenizer(splitDigits: false, pattern: .llama3)
        case "qwen2", "deepseek-r1-qwen": return PreTokenizer(splitDigits: false, pattern: .qwen2)
        case "qwen35": return PreTokenizer(splitDigits: false, pattern: .qwen35)
        default:
            throw EngineError.unsupported(
                "tokenizer.ggml.pre '\(name)' is not supported; known: \(knownGGUFNames.joined(separator: ", "))")
        }
    }

    // MARK: - Splitting

    /// The words of `text` (no added-token handling), e.g. for debugging or parity checks.
    public func words(_ text: String) -> [String] {
        let utf8 = Array(text.utf8)
        var out: [String] = []
        utf8.withUnsafeBufferPointer { buf in
            split(buf, 0..<buf.count) { r in out.append(String(decoding: UnsafeBufferPointer(rebasing: buf[r]), as: UTF8.self)) }
        }
        return out
    }

    /// Calls `body` with the byte range of every word of `bytes[range]` (valid UTF-8), in order.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var scalars = ScalarTable()
        scalars.decode(bytes, range, marksAreLetters: pattern == .qwen35)
        let n = scalars.count
        guard n > 0 else { return }
        if splitDigits {
            var pieceStart = 0
            for i in 0..<n where scalars.cls[i] == .number {
                if pieceStart < i { scan(scalars, pieceStart, i, body) }
                body(scalars.offsets[i]..<scalars.offsets[i + 1])
                pieceStart = i + 1
            }
            if pieceStart < n { scan(scalars, pieceStart, n, body) }
        } else {
            scan(scalars, 0, n, body)
        }
    }

    /// Runs the word regex over scalars `start..<end`, reporting byte ranges.
    private func scan(_ t: ScalarTable, _ start: Int, _ end: Int, _ body: (Range<Int>) -> Void) {
        var i = start
        while i < end {
            let j: Int
            switch pattern {
            case .gpt2: j = matchGPT2(t, i, end)
            case .llama3: j = matchLlama3(t, i, end, maxDigits: 3)
            case .qwen2, .qwen35: j = matchLlama3(t, i, end, maxDigits: 1)
            }
            body(t.offsets[i]..<t.offsets[j])
            i = j
        }
    }

    // MARK: - Patterns

    /// End of the match starting at `i` for the GPT-2 pattern (always > i).
    private func matchGPT2(_ t: ScalarTable, _ i: Int, _ end: Int) -> Int {
        if let j = contraction(t, i, end, caseInsensitive: false) { return j }
        let c = t.cls[i]
        let spaceThen: ScalarClass? = t.values[i] == 0x20 && i + 1 < end ? t.cls[i + 1] : nil
        for wanted in [ScalarClass.letter, .number, .other] {
            if spaceThen == wanted { return t.run(wanted, from: i + 1, end) }
            if c == wanted { return t.run(wanted, from: i, end) }
        }
        return whitespace(t, i, end)
    }

    /// End of the match starting at `i` for the Llama-3 pattern (always > i); `maxDigits` 1 is Qwen2's `\p{N}`.
    private func matchLlama3(_ t: ScalarTable, _ i: Int, _ end: Int, maxDigits: Int) -> Int {
        if let j = contraction(t, i, end, caseInsensitive: true) { return j }
        let c = t.cls[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c == .letter { return t.run(.letter, from: i, end) }
        if c != .number && c != .newline && i + 1 < end && t.cls[i + 1] == .letter {
            return t.run(.letter, from: i + 1, end)
        }
        // \p{N}{1,3} (Qwen2: \p{N})
        if c == .number {
            var j = i + 1
            while j < end && j < i + maxDigits && t.cls[j] == .number { j += 1 }
            return j
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        var p: Int? = nil
        if c == .other { p = i } else if t.values[i] == 0x20 && i + 1 < end && t.cls[i + 1] == .other { p = i + 1 }
        if let p { return t.run(.newline, from: t.run(.other, from: p, end), end) }
        // \s*[\r\n]+ : whitespace run up to and including its last newline
        let e = t.runWhitespace(from: i, end)
        var lastNewline = -1
        for k in i..<e where t.cls[k] == .newline { lastNewline = k }
        if lastNewline >= 0 { return lastNewline + 1 }
        return whitespace(t, i, end)
    }

    /// `\s+(?!\S)|\s+` at `i` (a whitespace scalar): the run minus its last scalar when a
    /// non-space follows and the run is longer than one.
    private func whitespace(_ t: ScalarTable, _ i: Int, _ end: Int) -> Int {
        guard t.cls[i].isSpace else { return i + 1 }  // unreachable: every class is covered above
        let e = t.runWhitespace(from: i, end)
        if e < end && e - 1 > i { return e - 1 }
        return e
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `i`, optionally case-insensitive (with Unicode folding of s/ſ).
    private func contraction(_ t: ScalarTable, _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int? {
        guard t.values[i] == 0x27, i + 1 < end else { return nil }
        func lower(_ k: Int) -> UInt32 {
            let v = t.values[k]
            guard caseInsensitive else { return v }
            if v >= 0x41 && v <= 0x5A { return v + 0x20 }
            if v == 0x17F { return 0x73 }  // ſ folds to s
            return v
        }
        switch lower(i + 1) {
        case 0x73, 0x74, 0x6D, 0x64: return i + 2  // s t m d
        case 0x72, 0x76: return i + 2 < end && lower(i + 2) == 0x65 ? i + 3 : nil  // re ve
        case 0x6C: return i + 2 < end && lower(i + 2) == 0x6C ? i + 3 : nil  // ll
        default: return nil
        }
    }
}

// MARK: - Scalar table

/// Regex-relevant class of one unicode scalar.
enum ScalarClass: UInt8 {
    case letter, number, space, newline, other  // newline = \r or \n (also whitespace)
    var isSpace: Bool { self == .space || self == .newline }

    /// \p{L} → letter, \p{N} → number, White_Space → space/newline, anything else → other;
    /// with `marksAreLetters`, \p{M} → letter too (Qwen3.5).
    static func of(_ v: UInt32, marksAreLetters: Bool = false) -> ScalarClass {
        if v < 128 { return ascii[Int(v)] }
        guard let s = Unicode.Scalar(v) else { return .other }
        let p = s.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        case .nonspacingMark, .spacingMark, .enclosingMark: return marksAreLetters ? .letter : .other
        default: return .other
        }
    }

    private static let ascii: [ScalarClass] = (0..<128).map { v -> ScalarClass in
        switch v {
        case 0x0A, 0x0D: .newline
        case 0x09, 0x0B, 0x0C, 0x20: .space
        case 0x30...0x39: .number
        case 0x41...0x5A, 0x61...0x7A: .letter
        default: .other
        }
    }
}

/// The scalars of one text segment: class, value and byte offset (`offsets` has count + 1 entries).
struct ScalarTable {
    var cls: [ScalarClass] = []
    var values: [UInt32] = []
    var offsets: [Int] = []
    var count: Int { cls.count }

    /// Decodes valid UTF-8 `bytes[range]`.
    mutating func decode(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, marksAreLetters: Bool = false) {
        cls.reserveCapacity(range.count)
        values.reserveCapacity(range.count)
        offsets.reserveCapacity(range.count + 1)
        var i = range.lowerBound
        while i < range.upperBound {
            let b0 = UInt32(bytes[i])
            var v: UInt32
            var len: Int
            if b0 < 0x80 { v = b0; len = 1 } else if b0 < 0xE0 { v = b0 & 0x1F; len = 2 } else if b0 < 0xF0 {
                v = b0 & 0x0F; len = 3
            } else { v = b0 & 0x07; len = 4 }
            len = min(len, range.upperBound - i)
            for k in 1..<max(len, 1) { v = (v << 6) | (UInt32(bytes[i + k]) & 0x3F) }
            offsets.append(i)
            values.append(v)
            cls.append(ScalarClass.of(v, marksAreLetters: marksAreLetters))
            i += len
        }
        offsets.append(range.upperBound)
    }

    /// First index ≥ `from` (and ≤ end) whose class is not `c`.
    func run(_ c: ScalarClass, from: Int, _ end: Int) -> Int {
        var j = from
        while j < end && cls[j] == c { j += 1 }
        return j
    }

    /// First index ≥ `from` that is not whitespace.
    func runWhitespace(from: Int, _ end: Int) -> Int {
        var j = from
        while j < end && cls[j].isSpace { j += 1 }
        return j
    }
}
