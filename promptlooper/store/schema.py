"""Schema of the store, as migrations (never edit a released migration: add one), which
:mod:`.migrating` applies in one transaction.

It covers the reference data model: projects, experiments, configurations, runs, stage results,
scores, the response cache, events, endpoints, settings, plus sweeps (progress and the steering
requests that other processes write) and webhooks.
"""

from __future__ import annotations

from .migrating import MigrationDb, Migrations

migrations = Migrations("promptlooper")


@migrations()
def m001_initial(db: MigrationDb) -> None:
    db.executescript(
        """
        CREATE TABLE projects (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT DEFAULT '',
            notes TEXT DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL
        );
        CREATE TABLE experiments (
            id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            name TEXT NOT NULL, description TEXT DEFAULT '', spec TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'draft', parent_id TEXT, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, UNIQUE (project_id, name)
        );
        CREATE TABLE configurations (
            experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
            id TEXT NOT NULL, config TEXT NOT NULL, varied TEXT NOT NULL,
            decision TEXT, decided_by TEXT, decision_reason TEXT, decided_at TEXT,
            created_at TEXT NOT NULL, PRIMARY KEY (experiment_id, id)
        );
        CREATE TABLE runs (
            id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
            config_id TEXT NOT NULL, sample_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
            repeat INTEGER NOT NULL DEFAULT 0, sweep_id TEXT, status TEXT NOT NULL, error TEXT,
            started_at TEXT, completed_at TEXT, duration_ms REAL, latency_ms REAL, tokens_in INTEGER DEFAULT 0,
            tokens_out INTEGER DEFAULT 0, cost REAL DEFAULT 0, score REAL, output TEXT
        );
        CREATE INDEX runs_experiment_config ON runs (experiment_id, config_id);
        CREATE TABLE stage_results (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, stage_index INTEGER NOT NULL,
            stage_name TEXT NOT NULL, kind TEXT NOT NULL, prompt_sent TEXT, response_raw TEXT,
            model_used TEXT, endpoint TEXT, parameters TEXT, tokens_in INTEGER DEFAULT 0,
            tokens_out INTEGER DEFAULT 0, latency_ms REAL, cached INTEGER DEFAULT 0, cache_key TEXT,
            PRIMARY KEY (run_id, stage_index)
        );
        CREATE TABLE scores (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, scorer TEXT NOT NULL,
            value REAL NOT NULL, metadata TEXT, scorer_name TEXT NOT NULL, scorer_args TEXT,
            source TEXT NOT NULL DEFAULT 'auto', created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, scorer)
        );
        CREATE TABLE response_cache (
            key TEXT PRIMARY KEY, endpoint TEXT NOT NULL, model TEXT NOT NULL, request TEXT NOT NULL,
            response TEXT NOT NULL, tokens_in INTEGER, tokens_out INTEGER, latency_ms REAL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, experiment_id TEXT,
            type TEXT NOT NULL, payload TEXT
        );
        CREATE INDEX events_experiment_type ON events (experiment_id, type, id);
        CREATE TABLE endpoints (
            name TEXT PRIMARY KEY, base_url TEXT NOT NULL, api_key_env TEXT,
            max_concurrency INTEGER NOT NULL DEFAULT 16, timeout REAL NOT NULL DEFAULT 60,
            max_retries INTEGER NOT NULL DEFAULT 6, prices TEXT DEFAULT '{}',
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL
        );
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE sweeps (
            id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
            strategy TEXT NOT NULL, status TEXT NOT NULL, requested TEXT, total INTEGER DEFAULT 0,
            done INTEGER DEFAULT 0, cached INTEGER DEFAULT 0, failed INTEGER DEFAULT 0,
            tokens_in INTEGER DEFAULT 0, tokens_out INTEGER DEFAULT 0, cost REAL DEFAULT 0,
            best_config_id TEXT, best_score REAL, options TEXT, owner_pid INTEGER, owner_host TEXT,
            heartbeat REAL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT,
            stop_reason TEXT
        );
        CREATE INDEX sweeps_experiment ON sweeps (experiment_id, started_at);
        CREATE TABLE webhooks (
            id TEXT PRIMARY KEY, event_type TEXT NOT NULL, url TEXT NOT NULL,
            headers_env TEXT DEFAULT '{}', is_active INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL
        );
        CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT, webhook_id TEXT NOT NULL, event_id INTEGER NOT NULL,
            attempt INTEGER NOT NULL, status INTEGER, error TEXT, ts TEXT NOT NULL
        );
        """
    )


@migrations()
def m002_told_values(db: MigrationDb) -> None:
    # Scores an outside driver (a notebook cell, an agent over MCP) reports for a configuration
    # it evaluated itself: guided search learns from them like from measured configurations.
    db.executescript(
        """
        CREATE TABLE told_values (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
            config_id TEXT NOT NULL, value REAL NOT NULL, source TEXT NOT NULL, created_at TEXT NOT NULL
        );
        CREATE INDEX told_values_experiment ON told_values (experiment_id, config_id);
        """
    )


@migrations()
def m003_missing_scores(db: MigrationDb) -> None:
    # A scorer that cannot say (a judge reply with no grade, a failed call, a broken scorer) leaves
    # a missing score, stored as NULL with its reason: writing 0 ranked such runs as worthless.
    # SQLite cannot drop NOT NULL in place, so the table is rebuilt with the same keys (rows of
    # runs that no longer exist, which ON DELETE CASCADE never leaves, would fail the foreign key).
    db.executescript(
        """
        CREATE TABLE scores_new (
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, scorer TEXT NOT NULL,
            value REAL, metadata TEXT, scorer_name TEXT NOT NULL, scorer_args TEXT,
            source TEXT NOT NULL DEFAULT 'auto', created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, scorer)
        );
        INSERT INTO scores_new (run_id, scorer, value, metadata, scorer_name, scorer_args, source, created_at)
            SELECT run_id, scorer, value, metadata, scorer_name, scorer_args, source, created_at FROM scores
            WHERE run_id IN (SELECT id FROM runs);
        DROP TABLE scores;
        ALTER TABLE scores_new RENAME TO scores;
        """
    )


@migrations()
def m004_definitions(db: MigrationDb) -> None:
    # The history of an experiment's definitions (samples, stages, space, scorers), one row each
    # time a sweep starts from a changed one, and the configurations each one planned or ran: the
    # leaderboard ranks the current definition, and earlier ones stay reachable.
    db.executescript(
        """
        CREATE TABLE definitions (
            experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
            number INTEGER NOT NULL, id TEXT NOT NULL, spec TEXT NOT NULL, sample_ids TEXT NOT NULL,
            created_at TEXT NOT NULL, PRIMARY KEY (experiment_id, number)
        );
        CREATE TABLE definition_configurations (
            experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
            number INTEGER NOT NULL, config_id TEXT NOT NULL, PRIMARY KEY (experiment_id, number, config_id)
        );
        """
    )


@migrations()
def m005_webhook_outbox(db: MigrationDb) -> None:
    # Webhooks as a durable outbox. Each webhook keeps a cursor (the last event id it has queued);
    # whichever process delivers (see promptlooper/webhooks.py) first queues, in one write
    # transaction, the events past each cursor that match, then claims due rows for a lease (so two
    # processes never send the same row at once; a process that dies mid-delivery leaves its claim
    # to expire). Event ids are given in commit order (every write is BEGIN IMMEDIATE), so a cursor
    # never skips one; and recording an event costs the sweep nothing more than the event row.
    db.executescript(
        """
        CREATE TABLE webhook_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
            event_id INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL,
            claimed_until REAL,
            last_status INTEGER,
            last_error TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            UNIQUE (webhook_id, event_id)
        );
        CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt);
        -- Each webhook's retry budget: attempts per event, and the backoff's base (seconds, doubling).
        ALTER TABLE webhooks ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 8;
        ALTER TABLE webhooks ADD COLUMN backoff REAL NOT NULL DEFAULT 1.0;
        ALTER TABLE webhooks ADD COLUMN last_event_id INTEGER NOT NULL DEFAULT 0;
        UPDATE webhooks SET last_event_id = (SELECT COALESCE(MAX(id), 0) FROM events);
        """
    )


@migrations()
def m006_archive_and_notes(db: MigrationDb) -> None:
    # Housekeeping: archived experiments and projects are hidden from lists (kept, and reachable
    # by name); notes are dated lines a person or an agent leaves on a project. An experiment's
    # folder (where the operator's file was) resolves its relative files when it is run again.
    db.executescript(
        """
        ALTER TABLE experiments ADD COLUMN archived_at TEXT;
        ALTER TABLE experiments ADD COLUMN folder TEXT;
        ALTER TABLE projects ADD COLUMN archived_at TEXT;
        CREATE TABLE project_notes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            text TEXT NOT NULL, by TEXT DEFAULT '', created_at TEXT NOT NULL
        );
        CREATE INDEX project_notes_project ON project_notes (project_id, id);
        """
    )


@migrations()
def m007_embedding_cache(db: MigrationDb) -> None:
    # Vectors of the embedding scorers and of planning, by content hash of (model, text), as
    # little-endian float32. Databases written before this migration may already have the table
    # (the embedder used to create it itself), hence IF NOT EXISTS.
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS embedding_cache (
            key TEXT PRIMARY KEY, model TEXT NOT NULL, vector BLOB NOT NULL, created_at TEXT
        );
        """
    )


@migrations()
def m008_sweep_chunks(db: MigrationDb) -> None:
    # A sweep shared by worker processes (promptlooper/store/chunks.py): its plan cut into ranges of
    # configuration indexes, each leased to one worker at a time. ``generation`` grows with every
    # claim and fences the batches of a worker whose lease was taken; ``lease_until`` is a Unix time.
    db.executescript(
        """
        CREATE TABLE sweep_chunks (
            sweep_id TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, runs INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued', owner TEXT, generation INTEGER NOT NULL DEFAULT 0,
            lease_until REAL, PRIMARY KEY (sweep_id, idx)
        );
        CREATE INDEX sweep_chunks_state ON sweep_chunks (state, sweep_id);
        """
    )


@migrations()
def m009_chunk_plans(db: MigrationDb) -> None:
    # A redirected workers' sweep is re-planned in the database (store/chunks.py): its chunks not
    # started are replaced by chunks of the new plan, numbered from 1 on; only the latest plan's
    # chunks are claimed (the plan a chunk's lo / hi index).
    db.execute("ALTER TABLE sweep_chunks ADD COLUMN plan INTEGER NOT NULL DEFAULT 0")


@migrations()
def m010_chunk_samples(db: MigrationDb) -> None:
    # A configuration bigger than a chunk is cut into ranges of its samples (store/chunks.py):
    # such a chunk is configuration ``lo`` only, samples ``samples_lo`` to ``samples_hi - 1``.
    db.execute("ALTER TABLE sweep_chunks ADD COLUMN samples_lo INTEGER")
    db.execute("ALTER TABLE sweep_chunks ADD COLUMN samples_hi INTEGER")


@migrations()
def m011_chunk_configurations(db: MigrationDb) -> None:
    # A guided search shared by workers (workers/guided.py) queues chunks as it decides them: each
    # names its configuration (``config_id``) and a range of the search's sample order.
    db.execute("ALTER TABLE sweep_chunks ADD COLUMN config_id TEXT")


@migrations()
def m020_call_claims(db: MigrationDb) -> None:
    # Calls shared by the processes of one store (store/claims.py): cache keys claimed while their
    # call is out, the processes that claim, and circuit breakers one process opened for all.
    db.executescript(
        """
        CREATE TABLE call_claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
        CREATE INDEX call_claims_owner ON call_claims (owner);
        CREATE TABLE call_sharers (owner TEXT PRIMARY KEY, heartbeat REAL NOT NULL, claiming INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE endpoint_breakers (
            endpoint TEXT PRIMARY KEY, owner TEXT NOT NULL, open_until REAL NOT NULL, reason TEXT
        );
        """
    )


@migrations()
def m040_sweep_budgets(db: MigrationDb) -> None:
    # A shared sweep's budget, reserved before each call (store/budgets.py): per sweep, what its
    # settled calls cost and what the calls out may cost at most; per process, its share of the
    # latter, freed when it stops renewing it. Costs in whole nano-dollars (exact sums).
    db.executescript(
        """
        CREATE TABLE sweep_budgets (
            sweep_id TEXT PRIMARY KEY REFERENCES sweeps(id) ON DELETE CASCADE,
            spent_tokens INTEGER NOT NULL DEFAULT 0, spent_nanos INTEGER NOT NULL DEFAULT 0,
            held_tokens INTEGER NOT NULL DEFAULT 0, held_nanos INTEGER NOT NULL DEFAULT 0,
            calls INTEGER NOT NULL DEFAULT 0, last_grant INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE budget_holds (
            sweep_id TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE, owner TEXT NOT NULL,
            tokens INTEGER NOT NULL DEFAULT 0, nanos INTEGER NOT NULL DEFAULT 0, expires_at REAL NOT NULL,
            PRIMARY KEY (sweep_id, owner)
        );
        """
    )


@migrations()
def m050_written_batches(db: MigrationDb) -> None:
    # Result batches a PostgreSQL store committed, by id, with their events' ids: a batch whose
    # connection was lost during COMMIT looks itself up before writing again (store/postgres/batches.py).
    # A SQLite file has no such loss (its commits are local), so its table stays empty: kept for
    # one schema on both backends.
    db.executescript(
        """
        CREATE TABLE written_batches (id TEXT PRIMARY KEY, event_ids TEXT NOT NULL, at REAL NOT NULL);
        CREATE INDEX written_batches_at ON written_batches (at);
        """
    )
