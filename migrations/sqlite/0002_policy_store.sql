-- The superuser baseline: one row per key that a superuser has ever set.
-- `value` is canonical JSON text; NULL means the key was reset and falls back to env/default.
-- The row is kept after a reset so that `version` keeps counting up: an editor holding an old
-- version can never match again after set -> reset -> set (no ABA on optimistic concurrency).
CREATE TABLE admin_runtime_policy (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NULL CHECK (value IS NULL OR json_valid(value)),
    -- Starts at 1 with the first write; 0 stands for "never written" in the application.
    version INTEGER NOT NULL CHECK (version >= 1),
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every change to the baseline, append-only (see the triggers below).
CREATE TABLE admin_runtime_policy_audit (
    -- AUTOINCREMENT so ids are never reused, which keeps "newest first" paging stable.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('update', 'reset', 'revert')),
    -- NULL for changes made from the CLI, whose actor is `cli:<os user>`.
    actor_id INTEGER NULL,
    actor_email TEXT NOT NULL CHECK (length(actor_email) > 0),
    at TEXT NOT NULL,
    -- The admin value before and after (canonical JSON); NULL means no admin value.
    from_value TEXT NULL CHECK (from_value IS NULL OR json_valid(from_value)),
    to_value TEXT NULL CHECK (to_value IS NULL OR json_valid(to_value)),
    -- The product allows at most 500 characters; the database enforces it too.
    reason TEXT NULL CHECK (reason IS NULL OR length(reason) <= 500),
    policy_revision INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    -- For a revert: the audit row whose value was restored.
    reverted_audit_id INTEGER NULL REFERENCES admin_runtime_policy_audit (id)
);

-- Per-key history and the global log's filters.
CREATE INDEX admin_runtime_policy_audit_key ON admin_runtime_policy_audit (key, id);
CREATE INDEX admin_runtime_policy_audit_at ON admin_runtime_policy_audit (at);
CREATE INDEX admin_runtime_policy_audit_actor ON admin_runtime_policy_audit (actor_email, id);

-- The audit log is evidence: the database itself refuses to change or remove a row, whatever
-- the application does.
CREATE TRIGGER admin_runtime_policy_audit_no_update
BEFORE UPDATE ON admin_runtime_policy_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_runtime_policy_audit is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER admin_runtime_policy_audit_no_delete
BEFORE DELETE ON admin_runtime_policy_audit
BEGIN
    SELECT RAISE(ABORT, 'admin_runtime_policy_audit is append-only: DELETE is not allowed');
END;
