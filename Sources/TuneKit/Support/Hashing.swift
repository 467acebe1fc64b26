// Hashing — helpers around Engine's SHA256 that only TuneKit needs.

import Engine
import Foundation

/// True when `s` is non-empty lowercase hexadecimal.
func isLowerHex(_ s: Substring) -> Bool {
    !s.isEmpty && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
}

/// sha256 of a file, or of a directory's sorted (name, file sha256) list (merge inputs and bases given as paths).
func contentSHA256(_ path: String, isDirectory: Bool) throws -> String {
    guard isDirectory else { return try SHA256.hashFile(path) }
    let files = try FileBlobStore.regularFiles(in: URL(fileURLWithPath: path)).sorted()
    let lines = try files.map { "\($0)\t\(try SHA256.hashFile((path as NSString).appendingPathComponent($0)))" }
    return SHA256.hash(Array(lines.joined(separator: "\n").utf8)).hex
}
