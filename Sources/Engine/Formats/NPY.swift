// NPY — writer for NumPy .npy files (format 1.0, little-endian float32, C order), byte-identical to numpy.save.

// MARK: - Writer

/// NumPy `.npy` output, for handing tensors to Python tooling.
public enum NPY {
    /// The header numpy writes for a `<f4` C-order array of `shape`: magic, version 1.0, u16 header length,
    /// the dict literal, spaces and a newline so the data starts at a multiple of 64 bytes.
    public static func header(shape: [Int]) throws -> [UInt8] {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw EngineError(.invalidArgument, "npy: invalid shape \(shape)")
        }
        // Python tuple repr: (), (5,), (2, 3)
        let dims = shape.map(String.init)
        let tuple = shape.count == 1 ? "(\(dims[0]),)" : "(\(dims.joined(separator: ", ")))"
        let dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(tuple), }".utf8)
        let prefixLen = 10                                   // magic (6) + version (2) + u16 length (2)
        let padLen = 64 - (prefixLen + dict.count + 1) % 64  // +1 for the closing newline; numpy never pads 0
        let headerLen = dict.count + padLen + 1
        guard headerLen <= Int(UInt16.max) else {
            throw EngineError(.invalidArgument, "npy: header for shape \(shape) is too long for format 1.0")
        }
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(headerLen & 0xFF), UInt8(headerLen >> 8)]
        out += dict
        out += repeatElement(UInt8(ascii: " "), count: padLen)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// Writes `values` (row-major, `prod(shape)` of them) as a `.npy` file, atomically.
    public static func write(_ values: [Float], shape: [Int], to path: String) throws {
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard d >= 0, !o else { throw EngineError(.invalidArgument, "npy: \(path): invalid shape \(shape)") }
            count = p
        }
        guard count == values.count else {
            throw EngineError(.invalidArgument, "npy: \(path): shape \(shape) has \(count) elements but \(values.count) values were given")
        }
        let head = try header(shape: shape)
        try HFAtomicWriter.write(path: path, chunks: [head, SafetensorsCodec.encode(values, dtype: .f32)])
    }
}
