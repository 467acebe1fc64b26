// NPYTests — the NPY writer produces exactly the bytes numpy.save writes (fixtures from
// scripts/reference/format_fixtures.py) and rejects inconsistent input.

import Engine
import Foundation
import Testing

// MARK: - Byte equality with numpy

@Test(arguments: [("scalar", [Int]()), ("vec5", [5]), ("mat2x3", [2, 3]), ("t2x3x4", [2, 3, 4]), ("empty0", [0])])
func npyMatchesNumpy(name: String, shape: [Int]) throws {
    let fixture = FormatsTestSupport.fixtures.appendingPathComponent("npy/\(name).npy")
    let expected = [UInt8](try Data(contentsOf: fixture))
    let count = shape.reduce(1, *)
    let values = (0..<count).map { Float($0) * 0.25 - 1 }
    try FormatsTestSupport.withTempDir { dir in
        let path = dir + "/\(name).npy"
        try NPY.write(values, shape: shape, to: path)
        let got = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(got == expected)
        #expect(try NPY.header(shape: shape) == Array(expected.prefix(expected.count - 4 * count)))
        #expect((try NPY.header(shape: shape)).count % 64 == 0)
    }
}

// MARK: - Errors

@Test func npyRejectsBadInput() throws {
    try FormatsTestSupport.withTempDir { dir throws in
        #expect(throws: EngineError.self) { try NPY.write([1, 2, 3], shape: [2, 2], to: dir + "/a.npy") }
        #expect(throws: EngineError.self) { try NPY.write([], shape: [-1], to: dir + "/b.npy") }
        #expect(throws: EngineError.self) { try NPY.write([1], shape: [1], to: dir + "/missing/c.npy") }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(left.isEmpty)
    }
}
