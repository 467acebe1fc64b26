// GGUFTypes — ggml tensor types (GGMLType) and GGUF tensor descriptors (GGUFTensorInfo).
// Block geometry for every ggml type is known here so files with types the kernels cannot
// dequantize still parse (and the error can name the type); `isSupported` asks the kernels.

import CKernels

// MARK: - GGMLType

/// A ggml tensor element type (enum ggml_type). Any raw value is representable so that
/// errors can name unknown types; `isKnown` tells whether ggml defines it.
public struct GGMLType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2)
    public static let q4_1 = GGMLType(rawValue: 3)
    public static let q5_0 = GGMLType(rawValue: 6)
    public static let q5_1 = GGMLType(rawValue: 7)
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let q8_1 = GGMLType(rawValue: 9)
    public static let q2_K = GGMLType(rawValue: 10)
    public static let q3_K = GGMLType(rawValue: 11)
    public static let q4_K = GGMLType(rawValue: 12)
    public static let q5_K = GGMLType(rawValue: 13)
    public static let q6_K = GGMLType(rawValue: 14)
    public static let q8_K = GGMLType(rawValue: 15)
    public static let i8 = GGMLType(rawValue: 24)
    public static let i16 = GGMLType(rawValue: 25)
    public static let i32 = GGMLType(rawValue: 26)
    public static let i64 = GGMLType(rawValue: 27)
    public static let f64 = GGMLType(rawValue: 28)
    public static let bf16 = GGMLType(rawValue: 30)
    /// tune-private: bitsandbytes' NF4 (64 weights + f32 absmax per block), for QLoRA over a float base.
    /// Not a ggml type: GGUF files never carry it (`isKnown` is false, the writers refuse it).
    public static let nf4 = GGMLType(rawValue: 1024)

    /// (name, elements per block, bytes per block) for every type ggml defines.
    private static let table: [UInt32: (String, Int, Int)] = [
        0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20),
        6: ("q5_0", 32, 22), 7: ("q5_1", 32, 24), 8: ("q8_0", 32, 34), 9: ("q8_1", 32, 40),
        10: ("q2_K", 256, 84), 11: ("q3_K", 256, 110), 12: ("q4_K", 256, 144), 13: ("q5_K", 256, 176),
        14: ("q6_K", 256, 210), 15: ("q8_K", 256, 292), 16: ("iq2_xxs", 256, 66), 17: ("iq2_xs", 256, 74),
        18: ("iq3_xxs", 256, 98), 19: ("iq1_s", 256, 50), 20: ("iq4_nl", 32, 18), 21: ("iq3_s", 256, 110),
        22: ("iq2_s", 256, 82), 23: ("iq4_xs", 256, 136), 24: ("i8", 1, 1), 25: ("i16", 1, 2),
        26: ("i32", 1, 4), 27: ("i64", 1, 8), 28: ("f64", 1, 8), 29: ("iq1_m", 256, 56),
        30: ("bf16", 1, 2), 34: ("tq1_0", 256, 54), 35: ("tq2_0", 256, 66), 39: ("mxfp4", 32, 17),
    ]

    /// Types of tune's own (in memory only).
    private static let privateTable: [UInt32: (String, Int, Int)] = [1024: ("nf4", 64, 36)]

    /// True if ggml defines this type (its block geometry is known).
    public var isKnown: Bool { Self.table[rawValue] != nil }
    private var geometry: (String, Int, Int)? { Self.table[rawValue] ?? Self.privateTable[rawValue] }
    /// ggml's short name ("q4_1"), or "type#N" for an unknown raw value.
    public var name: String { geometry?.0 ?? "type#\(rawValue)" }
    /// Elements per block (1 for scalar types); 0 if unknown.
    public var blockSize: Int { geometry?.1 ?? 0 }
    /// Bytes per block; 0 if unknown.
    public var blockBytes: Int { geometry?.2 ?? 0 }
    /// True if the kernels can dequantize this type (ck_type_can_dequantize).
    public var isSupported: Bool { rawValue <= UInt32(Int32.max) && ck_type_can_dequantize(Int32(rawValue)) != 0 }
    /// True if `ck_quantize_row` can produce this type (the GGUF writer's float inputs).
    public var canQuantize: Bool { [.f32, .f16, .bf16, .q4_0, .q4_1, .q8_0].contains(self) }
    public var description: String { name }

    /// Bytes needed for `count` elements, or nil if the type is unknown, `count` is negative
    /// or not a multiple of the block size, or the result overflows.
    public func byteCount(elements count: Int) -> Int? {
        guard blockSize > 0, count >= 0, count % blockSize == 0 else { return nil }
        let (r, o) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return o ? nil : r
    }
}

// MARK: - GGUFTensorInfo

/// One tensor of a GGUF file: name, shape (GGUF order: ne[0], the contiguous row length,
/// first), element type and offset of its data relative to `GGUFFile.dataOffset`.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let type: GGMLType
    public let offset: Int
    /// Product of `shape` (validated not to overflow when read from a file).
    public var elementCount: Int
    /// Bytes of tensor data (validated when read from a file).
    public var byteCount: Int

    /// Creates a descriptor; counts are computed with overflow checks (0 when invalid).
    public init(name: String, shape: [Int], type: GGMLType, offset: Int) {
        self.name = name
        self.shape = shape
        self.type = type
        self.offset = offset
        var n = 1
        for d in shape {
            let (r, o) = n.multipliedReportingOverflow(by: d)
            if o || d < 0 { n = 0; break }
            n = r
        }
        elementCount = n
        byteCount = type.byteCount(elements: n) ?? 0
    }

    /// Number of rows when viewed as a matrix of `shape[0]`-element rows.
    public var rowCount: Int { shape.first.map { $0 == 0 ? 0 : elementCount / $0 } ?? 0 }
}
