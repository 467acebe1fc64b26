// ByteLevel — GPT-2's reversible byte ↔ printable-unicode mapping used by byte-level BPE vocabularies.

/// The GPT-2 `bytes_to_unicode` table: every byte maps to one printable unicode scalar, so a
/// byte string can be written as a vocab string ("Ġ" is the space byte, "Ċ" is "\n").
enum ByteLevel {
    /// `scalarForByte[b]` is the unicode scalar value that stands for byte `b`.
    static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var printable = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { printable[b] = true }
        for b in 0xA1...0xAC { printable[b] = true }
        for b in 0xAE...0xFF { printable[b] = true }
        var next: UInt32 = 256
        for b in 0..<256 {
            if printable[b] {
                table[b] = UInt32(b)
            } else {
                table[b] = next
                next += 1
            }
        }
        return table
    }()

    /// Inverse of `scalarForByte`: scalar value → byte, for the 256 mapped scalars only.
    static let byteForScalar: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in scalarForByte.enumerated() { map[s] = UInt8(b) }
        return map
    }()

    /// The vocab-string spelling of raw bytes (e.g. `" the"` → `"Ġthe"`).
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = String.UnicodeScalarView()
        for b in bytes { out.append(Unicode.Scalar(scalarForByte[Int(b)])!) }
        return String(out)
    }

    /// The raw bytes a vocab string stands for, or nil if some scalar is not a byte-level one
    /// (HF's ByteLevel decoder then emits the token's own UTF-8, and so do we).
    static func decode(_ token: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard let b = byteForScalar[scalar.value] else { return nil }
            bytes.append(b)
        }
        return bytes
    }
}
