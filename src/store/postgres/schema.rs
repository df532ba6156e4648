//! The PostgreSQL schema as numbered migrations, applied on open in one transaction
//! under an advisory lock (so daemons starting together apply each once), and recorded
//! in `flowd_schema_version`.
//!
//! Job ids are `bytea` of their 16 big-endian bytes: `bytea` compares bytewise, so the
//! order of ids is the order of creation and "newest first" is an index scan backwards.
//! Times are nanoseconds since the epoch in a `bigint`. Whole rows are kept as `jsonb`
//! beside the columns that are filtered or ordered on; payloads as `json`, which keeps
//! their text (and so the order of their keys) as written.

/// Every migration, in order; the version of the `n`th (from 1) is `n`. Never edit one
/// that has shipped: add the next.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE executions (
    job_id bytea PRIMARY KEY,
    flow text NOT NULL,
    project text NOT NULL,
    status smallint NOT NULL,
    trigger_kind text NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX executions_by_flow ON executions (flow, job_id);
CREATE INDEX executions_by_status ON executions (status, job_id);
CREATE INDEX executions_by_flow_status ON executions (flow, status, job_id);

CREATE TABLE attempts (
    job_id bytea NOT NULL,
    attempt bigint NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE steps (
    job_id bytea NOT NULL,
    attempt bigint NOT NULL,
    step bigint NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (job_id, attempt, step)
);
CREATE TABLE payloads (
    job_id bytea NOT NULL,
    attempt bigint NOT NULL,
    step bigint NOT NULL,
    kind smallint NOT NULL,
    value json NOT NULL,
    PRIMARY KEY (job_id, attempt, step, kind)
);

-- A log record's key is (time, job, seq), as on redb; seq wraps like redb's u32.
CREATE SEQUENCE log_seq AS bigint MINVALUE 0 MAXVALUE 4294967295 CYCLE;
CREATE TABLE logs (
    time_ns bigint NOT NULL,
    job_id bytea NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('log_seq'),
    level smallint NOT NULL,
    project text NOT NULL,
    flow text NOT NULL,
    flow_version text NOT NULL,
    environment text NOT NULL,
    step text,
    connector text,
    action text NOT NULL,
    category text NOT NULL,
    message text NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (time_ns, job_id, seq)
);
CREATE INDEX logs_by_job ON logs (job_id, time_ns, seq);

CREATE TABLE inactive_flows (flow text PRIMARY KEY);
CREATE TABLE schedules (flow text PRIMARY KEY, last_fire_ns bigint NOT NULL);

-- Who holds which execution until when; the fence grows with every new owner.
CREATE TABLE claims (
    job_id bytea PRIMARY KEY,
    owner text NOT NULL,
    fence bigint NOT NULL,
    expires_ns bigint NOT NULL
);
"#,
    r#"
-- Requests every daemon sharing the database acts on, as counts that grow (each daemon
-- polls them): 'reload' asks each to reload its own config files.
CREATE TABLE signals (name text PRIMARY KEY, count bigint NOT NULL);
INSERT INTO signals (name, count) VALUES ('reload', 0);
"#,
    r#"
-- Throttles across daemons: places held under a lease, who waits, the next start.
CREATE TABLE throttle_slots (
    job_id bytea PRIMARY KEY,
    flow text NOT NULL,
    owner text NOT NULL,
    fence bigint NOT NULL
);
CREATE INDEX throttle_slots_by_flow ON throttle_slots (flow);
CREATE TABLE throttle_waits (
    flow text NOT NULL,
    job_id bytea NOT NULL,
    seen_ns bigint NOT NULL,
    PRIMARY KEY (flow, job_id)
);
CREATE INDEX throttle_waits_by_job ON throttle_waits (job_id);
CREATE TABLE throttle_rates (flow text PRIMARY KEY, next_ns bigint NOT NULL);
"#,
    r#"
-- Resumes asked of a timed pause another daemon waits out: the execution, the due time
-- of the pause asked of, when it was asked. The daemon waiting it out wakes it (each
-- polls this with the signals) and deletes the row; stale rows go with the next ask.
CREATE TABLE pause_wakes (job_id bytea PRIMARY KEY, due_ns bigint NOT NULL, asked_ns bigint NOT NULL);
"#,
];

/// The key of the advisory lock held while migrating ("flowd" in ASCII).
pub(super) const MIGRATION_LOCK: i64 = 0x0066_6c6f_7764;

pub(super) const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS flowd_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";
