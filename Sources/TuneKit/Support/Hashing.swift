// Hashing — helpers around Engine's SHA256 that only the registry needs.

/// True when `s` is non-empty lowercase hexadecimal.
func isLowerHex(_ s: Substring) -> Bool {
    !s.isEmpty && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
}
