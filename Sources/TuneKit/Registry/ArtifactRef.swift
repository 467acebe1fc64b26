// ArtifactRef — how users name artifacts: NAME, NAME@7, NAME@latest, NAME@production, sha256:<prefix>;
// and BaseRef, FAMILY@VERSION for a base model. Parsing only; Registry.resolve looks them up.

/// A reference to one artifact.
public enum ArtifactRef: Hashable, Sendable, CustomStringConvertible {
    /// The highest version of a name (`NAME`, `NAME@latest`).
    case latest(name: String)
    /// `NAME@7`.
    case version(name: String, Int)
    /// `NAME@staging`: whatever the alias points at.
    case alias(name: String, String)
    /// `sha256:<hex prefix>` (at least 6 hex digits).
    case digest(prefix: String)

    /// Parses a reference; throws `invalidArgument` naming the text on malformed input.
    public init(parsing text: String) throws {
        if text.hasPrefix("sha256:") {
            let hex = text.dropFirst(7)
            guard hex.count >= 6, hex.count <= 64, isLowerHex(hex) else {
                throw TuneError(.invalidArgument,
                                "bad reference '\(text)': sha256: needs 6 to 64 lowercase hex digits")
            }
            self = .digest(prefix: String(hex))
            return
        }
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        try ArtifactRef.validateName(name, in: text)
        guard parts.count == 2 else { self = .latest(name: name); return }
        let tail = String(parts[1])
        if tail == "latest" { self = .latest(name: name) }
        else if let v = Int(tail) {
            guard v >= 1 else { throw TuneError(.invalidArgument, "bad reference '\(text)': versions start at 1") }
            self = .version(name: name, v)
        } else {
            try ArtifactRef.validateAlias(tail, in: text)
            self = .alias(name: name, tail)
        }
    }

    public var description: String {
        switch self {
        case .latest(let n): "\(n)@latest"
        case .version(let n, let v): "\(n)@\(v)"
        case .alias(let n, let a): "\(n)@\(a)"
        case .digest(let p): "sha256:\(p)"
        }
    }

    // MARK: - Names

    /// Artifact names: letters, digits, `.`, `_`, `-`, `/`; starting with a letter or digit; up to 200 characters.
    public static func validateName(_ name: String, in text: String? = nil) throws {
        let ok = !name.isEmpty && name.utf8.count <= 200 && name.utf8.first.map(isAlnum) == true
            && name.utf8.allSatisfy { isAlnum($0) || $0 == 46 || $0 == 95 || $0 == 45 || $0 == 47 }
        if !ok {
            let ctx = text.map { "bad reference '\($0)'" } ?? "bad name '\(name)'"
            throw TuneError(.invalidArgument,
                            "\(ctx): names use letters, digits, '.', '_', '-', '/' and start with a letter or digit")
        }
    }

    /// Alias names: a letter, then letters, digits, `.`, `_`, `-`; not `latest`.
    public static func validateAlias(_ alias: String, in text: String? = nil) throws {
        let u = alias.utf8
        let ok = !u.isEmpty && u.count <= 100 && u.first.map(isAlpha) == true
            && u.allSatisfy { isAlnum($0) || $0 == 46 || $0 == 95 || $0 == 45 } && alias != "latest"
        if !ok {
            let ctx = text.map { "bad reference '\($0)'" } ?? "bad alias '\(alias)'"
            throw TuneError(.invalidArgument,
                            "\(ctx): aliases start with a letter, use letters, digits, '.', '_', '-', and are not 'latest'")
        }
    }
}

private func isAlpha(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
private func isAlnum(_ c: UInt8) -> Bool { isAlpha(c) || (c >= 48 && c <= 57) }

// MARK: - BaseRef

/// A base model version, `FAMILY@VERSION` (split at the last `@`), e.g. `SmolLM2-135M-Instruct@2024-11`.
public struct BaseRef: Hashable, Codable, Sendable, CustomStringConvertible {
    public var family: String
    public var version: String

    public init(family: String, version: String) {
        self.family = family
        self.version = version
    }

    public init(parsing text: String) throws {
        guard let at = text.lastIndex(of: "@"), at != text.startIndex, text.index(after: at) != text.endIndex else {
            throw TuneError(.invalidArgument, "bad base '\(text)': expected FAMILY@VERSION, e.g. SmolLM2-135M@1")
        }
        family = String(text[..<at])
        version = String(text[text.index(after: at)...])
    }

    public var description: String { "\(family)@\(version)" }
}
