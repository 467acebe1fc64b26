// SplitMix64 — the seeded random generator every random choice in tune takes explicitly.

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and the same stream on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A uniform Float in [-1, 1) with 24-bit resolution.
    public mutating func symmetric() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
}
