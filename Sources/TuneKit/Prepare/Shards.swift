// Shards — the on-disk token shard format (TUNESHD1): a small header and one zlib stream holding
// each sequence's ids (uint32), segment starts and loss mask (uint8). Writer, reader and zlib glue.
//
//     offset  size  field
//     0       8     magic "TUNESHD1"
//     8       4     version (u32 LE) = 1
//     12      4     flags (u32 LE) = 0, reserved
//     16      8     sequence count (u64 LE)
//     24      8     payload bytes before compression (u64 LE)
//     32      8     payload bytes after compression (u64 LE)
//     40      …     zlib stream (RFC 1950, deflate level 6) of the payload
//     payload, per sequence: u32 n_tokens, u32 n_segments, u32 segment_starts[n_segments],
//                            u32 ids[n_tokens], u8 mask[n_tokens]

import CZlib
import Engine
import Foundation

/// The shard format's constants.
public enum DatasetShard {
    public static let magic = Array("TUNESHD1".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 40
    public static let fileExtension = "tshd"

    /// Serializes `examples` into a complete shard file image.
    public static func encode(_ examples: [DatasetExample]) throws -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(examples.reduce(0) { $0 + 8 + 4 * $1.segmentStarts.count + 5 * $1.ids.count })
        for e in examples {
            guard e.mask.count == e.ids.count else {
                throw TuneError(.internal, "shard: mask length \(e.mask.count) ≠ ids length \(e.ids.count)")
            }
            appendU32(&payload, UInt32(e.ids.count))
            appendU32(&payload, UInt32(e.segmentStarts.count))
            for s in e.segmentStarts { appendU32(&payload, UInt32(bitPattern: s)) }
            for id in e.ids { appendU32(&payload, UInt32(bitPattern: id)) }
            payload += e.mask
        }
        let packed = try Zlib.compress(payload)
        var out = magic
        appendU32(&out, version)
        appendU32(&out, 0)
        appendU64(&out, UInt64(examples.count))
        appendU64(&out, UInt64(payload.count))
        appendU64(&out, UInt64(packed.count))
        out += packed
        return out
    }

    static func appendU32(_ b: inout [UInt8], _ v: UInt32) {
        b += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 24)]
    }

    static func appendU64(_ b: inout [UInt8], _ v: UInt64) {
        appendU32(&b, UInt32(truncatingIfNeeded: v))
        appendU32(&b, UInt32(truncatingIfNeeded: v >> 32))
    }
}

// MARK: - Reader

/// Reads a TUNESHD1 shard back into sequences; this is what the trainer iterates.
///
///     let shard = try DatasetShardReader(path: "out/train-00000.tshd")
///     for ex in shard.examples { … ex.ids, ex.mask, ex.segments … }
public struct DatasetShardReader: Sendable {
    public let path: String
    public let examples: [DatasetExample]

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TuneError(.fileAccess, "\(path): cannot read shard")
        }
        self.path = path
        examples = try Self.decode([UInt8](data), source: path)
    }

    /// Parses a shard image, checking every size against what the header promised.
    public static func decode(_ bytes: [UInt8], source: String) throws -> [DatasetExample] {
        func fail(_ what: String) -> TuneError { TuneError(.badData, "\(source): \(what)") }
        guard bytes.count >= DatasetShard.headerSize else {
            throw fail("\(bytes.count) bytes, shorter than the \(DatasetShard.headerSize)-byte header")
        }
        guard Array(bytes[0..<8]) == DatasetShard.magic else {
            throw fail("bad magic \(String(decoding: bytes[0..<8], as: UTF8.self).debugDescription), expected \"TUNESHD1\"")
        }
        let version = u32(bytes, 8)
        guard version == DatasetShard.version else { throw fail("shard version \(version), expected \(DatasetShard.version)") }
        let count = Int(u64(bytes, 16)), rawSize = Int(u64(bytes, 24)), packedSize = Int(u64(bytes, 32))
        guard bytes.count == DatasetShard.headerSize + packedSize else {
            throw fail("\(bytes.count - DatasetShard.headerSize) compressed bytes, header says \(packedSize)")
        }
        let payload = try Zlib.decompress(Array(bytes[DatasetShard.headerSize...]), expectedSize: rawSize, source: source)
        var out: [DatasetExample] = []
        out.reserveCapacity(count)
        var p = 0
        func need(_ n: Int) throws {
            guard p + n <= payload.count else { throw fail("payload ends early in sequence \(out.count)") }
        }
        for _ in 0..<count {
            try need(8)
            let n = Int(u32(payload, p)), segs = Int(u32(payload, p + 4))
            p += 8
            try need(4 * segs + 5 * n)
            let starts = (0..<segs).map { Int32(bitPattern: u32(payload, p + 4 * $0)) }
            p += 4 * segs
            let ids = (0..<n).map { Int32(bitPattern: u32(payload, p + 4 * $0)) }
            p += 4 * n
            let mask = Array(payload[p..<p + n])
            p += n
            guard starts.first == 0 || (n == 0 && starts.isEmpty), zip(starts, starts.dropFirst()).allSatisfy({ $0 < $1 }),
                  (starts.last ?? 0) <= Int32(n) else {
                throw fail("sequence \(out.count): segment starts \(starts) are not increasing from 0 within \(n) tokens")
            }
            out.append(DatasetExample(ids: ids, mask: mask, segmentStarts: starts))
        }
        guard p == payload.count else { throw fail("\(payload.count - p) bytes left after \(count) sequences") }
        return out
    }

    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }

    static func u64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(u32(b, o)) | UInt64(u32(b, o + 4)) << 32 }
}

// MARK: - zlib

/// One-shot zlib (RFC 1950) compression through the system library.
enum Zlib {
    static func compress(_ input: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        var destLen = compressBound(uLong(input.count))
        var out = [UInt8](repeating: 0, count: Int(destLen))
        let rc = input.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                compress2(dst.baseAddress, &destLen, src.baseAddress, uLong(input.count), level)
            }
        }
        guard rc == Z_OK else { throw TuneError(.internal, "zlib compress2 failed with code \(rc)") }
        out.removeSubrange(Int(destLen)...)
        return out
    }

    static func decompress(_ input: [UInt8], expectedSize: Int, source: String) throws -> [UInt8] {
        var destLen = uLong(expectedSize)
        var out = [UInt8](repeating: 0, count: max(expectedSize, 1))
        let rc = input.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                uncompress(dst.baseAddress, &destLen, src.baseAddress, uLong(input.count))
            }
        }
        guard rc == Z_OK, Int(destLen) == expectedSize else {
            let why = rc == Z_DATA_ERROR ? "corrupt zlib data" : rc == Z_BUF_ERROR ? "payload larger than the header says" : "zlib code \(rc)"
            throw TuneError(.badData, "\(source): cannot decompress shard (\(why); expected \(expectedSize) bytes, got \(destLen))")
        }
        out.removeSubrange(expectedSize...)
        return out
    }
}
