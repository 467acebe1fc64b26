// Artifact — the registry's nouns: artifact kinds, ids, stored records, governance fields, and the
// description of an artifact about to be registered.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Kind and ids

/// What an artifact is. Listed once; the schema's CHECK constraint is generated from this list.
public enum ArtifactKind: String, Codable, CaseIterable, Sendable {
    case dataset
    case adapter
    case mergedModel = "merged-model"
    case evalReport = "eval-report"
    case baseModel = "base-model"
    /// A model at a managed fine-tuning provider (`train.backend: openai`): its id, snapshot and provider (schema v5).
    case managedModel = "managed-model"
    /// A confidence router measured by an eval (`eval.routing`): the tuned model, the reference it escalates to, τ (schema v6).
    case router
}

/// A row id in one registry table, tagged with the table it belongs to, so an artifact id cannot be
/// passed where a run id is expected. Encodes as its bare integer.
public struct RowID<Table>: RawRepresentable, Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ v: Int64) { rawValue = v }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(Int64.self) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "\(rawValue)" }
}

/// Tags of `RowID` (never instantiated).
public enum ArtifactsTable {}
public enum RunsTable {}

/// Row id of an artifact in one registry.
public typealias ArtifactID = RowID<ArtifactsTable>
/// Row id of a pipeline run.
public typealias RunID = RowID<RunsTable>

// MARK: - Governance

/// Who may use an artifact and what it depends on: the fields compliance questions are asked about.
/// Unset base fields are inherited from parents at registration when all parents that have one agree.
public struct Governance: Codable, Hashable, Sendable {
    /// Base model family, e.g. `SmolLM2-135M-Instruct`.
    public var baseFamily: String?
    /// Base model version within the family, e.g. `2024-11` or `1`.
    public var baseVersion: String?
    /// License identifier, e.g. `apache-2.0`.
    public var license: String?
    /// Where the training data came from (URL, bucket, dataset name).
    public var datasetSource: String?
    /// Terms the data was obtained under.
    public var dataTerms: String?
    /// Who created it (a user or service account).
    public var createdBy: String
    /// What created it, e.g. `tune 0.1.0 artifacts add` or `tune 0.1.0 run 12 train`.
    public var createdWith: String

    public init(baseFamily: String? = nil, baseVersion: String? = nil, license: String? = nil,
                datasetSource: String? = nil, dataTerms: String? = nil,
                createdBy: String = Governance.currentUser, createdWith: String = "tune \(TuneKitInfo.version)") {
        self.baseFamily = baseFamily
        self.baseVersion = baseVersion
        self.license = license
        self.datasetSource = datasetSource
        self.dataTerms = dataTerms
        self.createdBy = createdBy
        self.createdWith = createdWith
    }

    /// `$USER` (or `unknown`).
    public static var currentUser: String { ProcessInfo.processInfo.environment["USER"] ?? "unknown" }

    enum CodingKeys: String, CodingKey {
        case baseFamily = "base_family", baseVersion = "base_version", license
        case datasetSource = "dataset_source", dataTerms = "data_terms"
        case createdBy = "created_by", createdWith = "created_with"
    }
}

// MARK: - Artifact

/// How a blob is stored: one file, or a directory (e.g. a PEFT adapter) hashed through its manifest.
/// `reference`: content that stays where it is (a base model file or directory, often 100 MB and up): the
/// artifact records its sha256 and `file://` path, and `verify` re-hashes it there (schema v5).
public enum BlobLayout: String, Codable, Sendable { case file, directory, reference }

/// A registered artifact.
public struct Artifact: Codable, Hashable, Sendable {
    public var id: ArtifactID
    public var kind: ArtifactKind
    public var name: String
    /// 1, 2, 3… per name, assigned at registration.
    public var version: Int
    /// Content address: sha256 of the file, or of the directory manifest.
    public var sha256: String
    /// Bytes of content (sum of file sizes for a directory).
    public var size: Int64
    public var layout: BlobLayout
    /// Location relative to the blob store root, `sha256/ab/abcdef…`.
    public var uri: String
    public var metadata: [String: JSONValue]
    public var governance: Governance
    /// The run that produced it, if any.
    public var runID: RunID?
    /// UTC, ISO 8601 with milliseconds.
    public var createdAt: String

    /// `NAME@VERSION`.
    public var ref: String { "\(name)@\(version)" }

    enum CodingKeys: String, CodingKey {
        case id, kind, name, version, sha256, size, layout, uri, metadata, governance
        case runID = "run_id", createdAt = "created_at"
    }
}

/// An artifact to register: where its content is now, and what to record about it.
public struct NewArtifact: Sendable {
    public var kind: ArtifactKind
    public var name: String
    /// A file or a directory; copied into the blob store.
    public var source: URL
    public var metadata: [String: JSONValue]
    public var governance: Governance

    public init(kind: ArtifactKind, name: String, source: URL, metadata: [String: JSONValue] = [:],
                governance: Governance = Governance()) {
        self.kind = kind
        self.name = name
        self.source = source
        self.metadata = metadata
        self.governance = governance
    }
}

// MARK: - Time

enum Timestamp {
    /// Now, as UTC ISO 8601 with milliseconds (`2026-11-23T13:02:27.819Z`; sorts as text). Formatted by hand:
    /// a DateFormatter costs ~100 µs per call on Linux.
    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(Int(tm.tm_year) + 1900, 4))-\(pad(Int(tm.tm_mon) + 1, 2))-\(pad(Int(tm.tm_mday), 2))T"
            + "\(pad(Int(tm.tm_hour), 2)):\(pad(Int(tm.tm_min), 2)):\(pad(Int(tm.tm_sec), 2)).\(pad(ts.tv_nsec / 1_000_000, 3))Z"
    }
}
