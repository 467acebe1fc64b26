// Schema — the registry's tables as versioned migrations, one DDL list per backend (the only place
// the dialects differ in DDL: INTEGER PRIMARY KEY vs BIGINT GENERATED … AS IDENTITY, WITHOUT ROWID,
// COLLATE "C" so PostgreSQL sorts and compares text bytewise as SQLite does). Both lists have the same
// length: index + 1 is the schema version.
// • SQLite: each step runs once, in order, inside one IMMEDIATE transaction that also reads and bumps
//   `PRAGMA user_version`, so two processes opening a fresh registry at the same moment cannot both
//   apply a step. (GRDB's DatabaseMigrator reads the applied list outside the migration's transaction.)
// • PostgreSQL: the same, in one transaction holding the registry's write lock (an advisory lock), with
//   the version in the one-row table `tune_schema`.

import GRDB

enum Schema {
    /// Migrations in order; index + 1 is the schema version. Never edit a shipped step; append a new one.
    static let migrations: [(name: String, sql: String)] = [
        ("v1 artifacts, lineage, aliases, runs", v1),
        ("v2 artifact_bases: the base versions each artifact is exposed to", v2),
        ("v3 bases, schedules, jobs (durable queue) and job history", v3),
        ("v4 stage_claims: one run per stage cache key, across processes", v4),
        ("v5 governance: managed-model kind, reference blobs, deprecations", v5),
        ("v6 router kind", v6),
        ("v7 backfills: data backfills done once (base-model artifacts for past runs)", v7),
    ]

    static var currentVersion: Int { migrations.count }

    /// Brings `db` up to `currentVersion`; refuses a registry written by a newer tune.
    static func migrateSQLite(_ db: Database, path: String) throws {
        // v5 rebuilds `artifacts` (SQLite cannot alter a CHECK constraint): SQLite's documented 12-step
        // procedure needs foreign keys off while the old table is dropped and the new one renamed; they
        // are checked (`foreign_key_check`) before the commit and switched back on afterwards. The pragma
        // is a no-op inside a transaction, so it is set around it.
        try db.execute(sql: "PRAGMA foreign_keys = OFF")
        defer { try? db.execute(sql: "PRAGMA foreign_keys = ON") }
        try db.inTransaction(.immediate) {
            let have = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
            guard have <= currentVersion else {
                throw TuneError(.conflict, "\(path): registry schema version \(have) is newer than this tune understands (\(currentVersion)); upgrade tune")
            }
            for step in migrations.dropFirst(have) { try db.execute(sql: step.sql) }
            if have < currentVersion, try Row.fetchOne(db, sql: "PRAGMA foreign_key_check") != nil {
                throw TuneError(.database, "\(path): migration left dangling references (PRAGMA foreign_key_check); nothing was changed")
            }
            if have < currentVersion { try db.execute(sql: "PRAGMA user_version = \(currentVersion)") }
            return .commit
        }
    }

    /// Brings a PostgreSQL database up to `currentVersion`; refuses one written by a newer tune.
    static func migratePostgres(_ c: PostgresDatabase.Connection, location: String) throws {
        guard postgresMigrations.count == migrations.count else {
            throw TuneError(.internal, "schema: \(postgresMigrations.count) PostgreSQL steps for \(migrations.count) SQLite steps")
        }
        try c.simple("BEGIN")
        do {
            _ = try c.query("SELECT pg_advisory_xact_lock(?)", [PostgresDatabase.writeLockKey])
            try c.simple("CREATE TABLE IF NOT EXISTS tune_schema (version INTEGER NOT NULL)")
            let have = try c.scalar(Int.self, "SELECT max(version) FROM tune_schema") ?? 0
            guard have <= currentVersion else {
                throw TuneError(.conflict, "\(location): registry schema version \(have) is newer than this tune understands (\(currentVersion)); upgrade tune")
            }
            for step in postgresMigrations.dropFirst(have) { try c.simple(step.sql) }
            if have < currentVersion {
                try c.execute("DELETE FROM tune_schema", [])
                try c.execute("INSERT INTO tune_schema (version) VALUES (?)", [currentVersion])
            }
            try c.simple("COMMIT")
        } catch {
            try? c.simple("ROLLBACK")
            throw error
        }
    }

    private static let kinds = ArtifactKind.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")

    // MARK: - v1

    static let v1 = """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            pipeline TEXT NOT NULL,
            config TEXT NOT NULL DEFAULT '{}',      -- JSON
            status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
            created_by TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT
        );
        CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN (\(kinds))),
            name TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
            size INTEGER NOT NULL,
            layout TEXT NOT NULL CHECK (layout IN ('file', 'directory')),
            uri TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',    -- JSON object
            base_family TEXT,
            base_version TEXT,
            license TEXT,
            dataset_source TEXT,
            data_terms TEXT,
            created_by TEXT NOT NULL,
            created_with TEXT NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL,
            UNIQUE (name, version)
        );
        CREATE INDEX artifacts_sha256 ON artifacts(sha256);
        CREATE INDEX artifacts_base ON artifacts(base_family, base_version);
        CREATE INDEX artifacts_kind ON artifacts(kind, name);
        CREATE TABLE lineage (
            parent_id INTEGER NOT NULL REFERENCES artifacts(id),
            child_id INTEGER NOT NULL REFERENCES artifacts(id),
            role TEXT NOT NULL,
            PRIMARY KEY (child_id, parent_id, role)
        ) WITHOUT ROWID;
        CREATE INDEX lineage_parent ON lineage(parent_id, child_id);
        CREATE TABLE aliases (
            name TEXT NOT NULL,
            alias TEXT NOT NULL,
            artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
            updated_at TEXT NOT NULL,
            PRIMARY KEY (name, alias)
        ) WITHOUT ROWID;
        CREATE INDEX aliases_artifact ON aliases(artifact_id);
        CREATE TABLE alias_history (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            alias TEXT NOT NULL,
            artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
            previous_id INTEGER REFERENCES artifacts(id),
            changed_by TEXT NOT NULL,
            changed_at TEXT NOT NULL
        );
        CREATE INDEX alias_history_name ON alias_history(name, alias, id);
        CREATE TABLE stage_runs (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            stage TEXT NOT NULL,
            cache_key TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
            config TEXT NOT NULL DEFAULT '{}',      -- JSON
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX stage_runs_cache_key ON stage_runs(cache_key, status, id);
        CREATE INDEX stage_runs_run ON stage_runs(run_id, id);
        CREATE TABLE stage_outputs (
            stage_run_id INTEGER NOT NULL REFERENCES stage_runs(id),
            artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
            PRIMARY KEY (stage_run_id, artifact_id)
        ) WITHOUT ROWID;
        """

    // MARK: - v2

    /// Every (base version, artifact) pair where the artifact's record names the base (`direct`) or it
    /// descends through lineage from one that does: exposure becomes one primary-key range scan instead
    /// of a recursive walk of the lineage graph (100k artifacts: the walk alone took most of a 1 ms budget).
    /// Artifacts and edges are immutable, so `Registry.insert` keeps it exact by adding the new artifact's
    /// own base plus its inputs' rows. Existing registries are filled here by the same walk, once.
    static let v2 = """
        CREATE TABLE artifact_bases (
            base_family TEXT NOT NULL,
            base_version TEXT NOT NULL,
            artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
            direct INTEGER NOT NULL CHECK (direct IN (0, 1)),  -- the artifact's own record names this base
            PRIMARY KEY (base_family, base_version, artifact_id)
        ) WITHOUT ROWID;
        CREATE INDEX artifact_bases_artifact ON artifact_bases(artifact_id);
        INSERT INTO artifact_bases (base_family, base_version, artifact_id, direct)
        WITH RECURSIVE reach(id, family, version) AS (
            SELECT id, base_family, base_version FROM artifacts WHERE base_family IS NOT NULL AND base_version IS NOT NULL
            UNION SELECT l.child_id, r.family, r.version FROM lineage l JOIN reach r ON l.parent_id = r.id)
        SELECT r.family, r.version, r.id, (a.base_family IS r.family AND a.base_version IS r.version)
        FROM reach r JOIN artifacts a ON a.id = r.id;
        """

    // MARK: - v3

    /// Base model versions (referenced by path + sha256, not copied), scheduled pipelines, and the durable
    /// job queue with its append-only transition history (docs/schedule.md). Existing registries gain
    /// empty tables; nothing already stored changes. `IF NOT EXISTS`: a registry whose user_version was
    /// wound back (as tests do to replay older migrations) keeps its queue instead of failing to open.
    static let v3 = """
        CREATE TABLE IF NOT EXISTS bases (
            family TEXT NOT NULL,
            version TEXT NOT NULL,
            seq INTEGER NOT NULL,                   -- registration order within the family: latest = max
            path TEXT NOT NULL,                     -- absolute path of the model file or directory
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
            size INTEGER NOT NULL,
            format TEXT NOT NULL,                   -- gguf | huggingface
            architecture TEXT NOT NULL,
            hidden_size INTEGER NOT NULL,
            num_layers INTEGER NOT NULL,
            vocab_size INTEGER NOT NULL,
            license TEXT NOT NULL,
            notes TEXT,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (family, version),
            UNIQUE (family, seq)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS schedules (
            pipeline TEXT PRIMARY KEY,
            spec_path TEXT NOT NULL,                -- absolute path of pipeline.yaml, re-read by each job
            base_family TEXT NOT NULL,
            base_pin TEXT,                          -- NULL: FAMILY@latest
            on_base_upgrade INTEGER NOT NULL CHECK (on_base_upgrade IN (0, 1)),
            cron TEXT,
            time_zone TEXT,
            max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
            cron_checked_at TEXT NOT NULL,          -- cron times up to here have been considered
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY,
            pipeline TEXT NOT NULL,
            base_family TEXT NOT NULL,
            base_version TEXT NOT NULL,
            trigger TEXT NOT NULL CHECK (trigger IN ('base_upgrade', 'cron')),
            trigger_key TEXT NOT NULL,              -- base_upgrade | cron:<fire time>
            state TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'running', 'succeeded', 'failed', 'cancelled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            not_before TEXT NOT NULL,
            lease_owner TEXT,
            lease_expires_at TEXT,
            heartbeat_at TEXT,
            result TEXT,                            -- JSON summary when finished
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (pipeline, base_family, base_version, trigger_key)
        );
        CREATE INDEX IF NOT EXISTS jobs_due ON jobs(state, not_before, id);
        CREATE TABLE IF NOT EXISTS job_history (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            from_state TEXT,
            to_state TEXT NOT NULL,
            owner TEXT,
            attempt INTEGER NOT NULL,
            detail TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS job_history_job ON job_history(job_id, id);
        """

    // MARK: - v4

    /// Stage claims (Registry+Claims.swift, docs/concurrency.md): the run executing a stage holds the row
    /// for its cache key, refreshes `heartbeat_at` while it runs and deletes the row when done; other runs
    /// of the same key wait, or take over a stale row. Times are UTC ISO 8601 text (they sort as text).
    static let v4 = """
        CREATE TABLE IF NOT EXISTS stage_claims (
            cache_key TEXT NOT NULL PRIMARY KEY,
            stage TEXT NOT NULL,
            pipeline TEXT NOT NULL,
            owner_pid INTEGER NOT NULL,
            owner_host TEXT NOT NULL,
            owner_token TEXT NOT NULL,              -- random per claim: refresh and release match on it
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """

    // MARK: - v5

    /// Governance (docs/governance.md): the `managed-model` kind and the `reference` layout (a base model
    /// recorded by path + sha256, not copied) need wider CHECK constraints, which SQLite can only get by
    /// rebuilding `artifacts` (same columns, same rows, same ids; its indexes recreated); and
    /// `deprecations`, one row per deprecated artifact. Everything depending on a deprecated artifact
    /// is found by a recursive walk of `lineage` (Registry+Governance.swift).
    static let v5 = rebuildArtifacts("v5") + """
        \(deprecations)
        """

    private static let layouts = "'file', 'directory', 'reference'"

    /// SQLite widens a CHECK only by rebuilding the table: `artifacts` copied into `artifacts_TAG` with the
    /// current kind/layout constraints (same columns, rows and ids), swapped in, its indexes recreated.
    private static func rebuildArtifacts(_ tag: String) -> String {
        """
        CREATE TABLE artifacts_\(tag) (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN (\(kinds))),
            name TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
            size INTEGER NOT NULL,
            layout TEXT NOT NULL CHECK (layout IN (\(layouts))),
            uri TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            base_family TEXT,
            base_version TEXT,
            license TEXT,
            dataset_source TEXT,
            data_terms TEXT,
            created_by TEXT NOT NULL,
            created_with TEXT NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            created_at TEXT NOT NULL,
            UNIQUE (name, version)
        );
        INSERT INTO artifacts_\(tag) SELECT id, kind, name, version, sha256, size, layout, uri, metadata, base_family, base_version,
            license, dataset_source, data_terms, created_by, created_with, run_id, created_at FROM artifacts;
        DROP TABLE artifacts;
        ALTER TABLE artifacts_\(tag) RENAME TO artifacts;
        CREATE INDEX artifacts_sha256 ON artifacts(sha256);
        CREATE INDEX artifacts_base ON artifacts(base_family, base_version);
        CREATE INDEX artifacts_kind ON artifacts(kind, name);

        """
    }

    static let deprecations = """
        CREATE TABLE IF NOT EXISTS deprecations (
            artifact_id INTEGER NOT NULL PRIMARY KEY REFERENCES artifacts(id),
            reason TEXT NOT NULL,
            effective TEXT NOT NULL,                -- the date it takes effect (as given, e.g. 2026-12-31)
            deprecated_by TEXT NOT NULL,
            deprecated_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """

    /// v5 on PostgreSQL: constraints are altered in place (their default names), no rebuild.
    static let v5Postgres = """
        ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_kind_check;
        ALTER TABLE artifacts ADD CONSTRAINT artifacts_kind_check CHECK (kind IN (\(kinds)));
        ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_layout_check;
        ALTER TABLE artifacts ADD CONSTRAINT artifacts_layout_check CHECK (layout IN (\(layouts)));
        \(deprecations)
        """

    // MARK: - v6

    /// The `router` kind (eval.routing, docs/routing.md): the kind CHECK widened by the same rebuild as v5.
    static let v6 = rebuildArtifacts("v6")

    /// v6 on PostgreSQL: the kind constraint altered in place.
    static let v6Postgres = """
        ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_kind_check;
        ALTER TABLE artifacts ADD CONSTRAINT artifacts_kind_check CHECK (kind IN (\(kinds)));
        """

    // MARK: - v7

    /// Backfills that take more than SQL (reading and hashing model files): one row per backfill done, so
    /// an upgraded registry runs each once, after its migration (Registry+Backfill.swift). `IF NOT EXISTS`:
    /// like v3, a registry whose version was wound back keeps what it had.
    static let v7 = """
        CREATE TABLE IF NOT EXISTS backfills (
            name TEXT PRIMARY KEY,
            done_at TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'      -- JSON: what it did
        ) WITHOUT ROWID;
        """

    // MARK: - PostgreSQL

    /// The same tables in PostgreSQL's dialect (see the SQLite steps above for what each column means).
    static let postgresMigrations: [(name: String, sql: String)] = [
        (migrations[0].name, pg(v1)),
        (migrations[1].name, pg(v2Postgres)),
        (migrations[2].name, pg(v3)),
        (migrations[3].name, pg(v4)),
        (migrations[4].name, pg(v5Postgres)),
        (migrations[5].name, pg(v6Postgres)),
        (migrations[6].name, pg(v7)),
    ]

    /// SQLite DDL → PostgreSQL DDL for the constructs the steps use: row-id keys become identity
    /// columns, integers 64-bit, text columns bytewise ("C") collated, `WITHOUT ROWID` dropped.
    static func pg(_ sql: String) -> String {
        var s = sql
        s = s.replacingOccurrences(of: "id INTEGER PRIMARY KEY,", with: "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,")
        s = s.replacingOccurrences(of: " WITHOUT ROWID", with: "")
        s = s.replacingOccurrences(of: " INTEGER", with: " BIGINT")
        s = s.replacingOccurrences(of: " TEXT", with: " TEXT COLLATE \"C\"")
        s = s.replacingOccurrences(of: " BLOB", with: " BYTEA")
        return s
    }

    /// v2 with the backfill written for PostgreSQL (`IS NOT DISTINCT FROM`, an integer flag).
    static let v2Postgres = """
        CREATE TABLE artifact_bases (
            base_family TEXT NOT NULL,
            base_version TEXT NOT NULL,
            artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
            direct INTEGER NOT NULL CHECK (direct IN (0, 1)),
            PRIMARY KEY (base_family, base_version, artifact_id)
        );
        CREATE INDEX artifact_bases_artifact ON artifact_bases(artifact_id);
        INSERT INTO artifact_bases (base_family, base_version, artifact_id, direct)
        WITH RECURSIVE reach(id, family, version) AS (
            SELECT id, base_family, base_version FROM artifacts WHERE base_family IS NOT NULL AND base_version IS NOT NULL
            UNION SELECT l.child_id, r.family, r.version FROM lineage l JOIN reach r ON l.parent_id = r.id)
        SELECT r.family, r.version, r.id,
            CASE WHEN a.base_family IS NOT DISTINCT FROM r.family AND a.base_version IS NOT DISTINCT FROM r.version THEN 1 ELSE 0 END
        FROM reach r JOIN artifacts a ON a.id = r.id;
        """
}
