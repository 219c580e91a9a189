-- The superuser baseline: one row per key that a superuser has ever set.
-- `value` is canonical JSON text (TEXT rather than JSONB: the application reads both backends
-- through one driver and compares canonical text); NULL means the key was reset and falls back
-- to env/default. The row is kept after a reset so that `version` keeps counting up: an editor
-- holding an old version can never match again after set -> reset -> set.
CREATE TABLE admin_runtime_policy (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NULL CHECK (value IS NULL OR value::jsonb IS NOT NULL),
    -- Starts at 1 with the first write; 0 stands for "never written" in the application.
    version BIGINT NOT NULL CHECK (version >= 1),
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every change to the baseline, append-only (see the triggers below).
CREATE TABLE admin_runtime_policy_audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('update', 'reset', 'revert')),
    -- NULL for changes made from the CLI, whose actor is `cli:<os user>`.
    actor_id BIGINT NULL,
    actor_email TEXT NOT NULL CHECK (char_length(actor_email) > 0),
    at TEXT NOT NULL,
    -- The admin value before and after (canonical JSON); NULL means no admin value.
    from_value TEXT NULL CHECK (from_value IS NULL OR from_value::jsonb IS NOT NULL),
    to_value TEXT NULL CHECK (to_value IS NULL OR to_value::jsonb IS NOT NULL),
    -- The product allows at most 500 characters; the database enforces it too.
    reason TEXT NULL CHECK (reason IS NULL OR char_length(reason) <= 500),
    policy_revision BIGINT NOT NULL,
    key_version BIGINT NOT NULL,
    -- For a revert: the audit row whose value was restored.
    reverted_audit_id BIGINT NULL REFERENCES admin_runtime_policy_audit (id)
);

-- Per-key history and the global log's filters.
CREATE INDEX admin_runtime_policy_audit_key ON admin_runtime_policy_audit (key, id);
CREATE INDEX admin_runtime_policy_audit_at ON admin_runtime_policy_audit (at);
CREATE INDEX admin_runtime_policy_audit_actor ON admin_runtime_policy_audit (actor_email, id);

-- The audit log is evidence: the database itself refuses to change, remove or truncate rows,
-- whatever the application does.
CREATE FUNCTION admin_runtime_policy_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_runtime_policy_audit is append-only: % is not allowed', TG_OP;
END;
$$;

CREATE TRIGGER admin_runtime_policy_audit_no_update_delete
BEFORE UPDATE OR DELETE ON admin_runtime_policy_audit
FOR EACH ROW EXECUTE FUNCTION admin_runtime_policy_audit_append_only();

CREATE TRIGGER admin_runtime_policy_audit_no_truncate
BEFORE TRUNCATE ON admin_runtime_policy_audit
FOR EACH STATEMENT EXECUTE FUNCTION admin_runtime_policy_audit_append_only();
