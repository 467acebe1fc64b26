// TuneKit — orchestration: pipelines, stages, registry. Grows from issue 4 on.
import Engine

/// tune's on-disk format version; part of every stage cache key.
public enum TuneKitInfo {
    public static let formatVersion = 1
    public static let version = "0.1.0"
}
