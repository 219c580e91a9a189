-- A change set: one or more key changes with one reason, applied in one transaction at one
-- policy revision. Each key's audit row names its change set; restores say what they restored.
CREATE TABLE policy_change_sets (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('apply', 'restore_revision', 'restore_run')),
    actor_id BIGINT NULL,
    actor_email TEXT NOT NULL CHECK (char_length(actor_email) > 0),
    at TEXT NOT NULL,
    reason TEXT NULL CHECK (reason IS NULL OR char_length(reason) <= 500),
    policy_revision BIGINT NOT NULL UNIQUE,
    -- For a restore: the revision, or the run whose snapshot, that was restored.
    restored_revision BIGINT NULL,
    restored_run BIGINT NULL,
    -- Set when the change set is an approved change request.
    request_id BIGINT NULL
);

-- What was in force before and after each change: the effective value (canonical JSON) and the
-- layer it came from. Rows written before this migration have NULLs here.
ALTER TABLE admin_runtime_policy_audit
    ADD COLUMN from_effective TEXT NULL CHECK (from_effective IS NULL OR from_effective::jsonb IS NOT NULL),
    ADD COLUMN from_source TEXT NULL CHECK (from_source IS NULL OR from_source IN ('default', 'env', 'admin')),
    ADD COLUMN to_effective TEXT NULL CHECK (to_effective IS NULL OR to_effective::jsonb IS NOT NULL),
    ADD COLUMN to_source TEXT NULL CHECK (to_source IS NULL OR to_source IN ('default', 'env', 'admin')),
    ADD COLUMN change_set_id BIGINT NULL REFERENCES policy_change_sets (id);

CREATE INDEX admin_runtime_policy_audit_revision ON admin_runtime_policy_audit (policy_revision);

-- Change sets are evidence too: never changed, never removed.
CREATE FUNCTION policy_change_sets_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'policy_change_sets is append-only: % is not allowed', TG_OP;
END;
$$;

CREATE TRIGGER policy_change_sets_no_update_delete
BEFORE UPDATE OR DELETE ON policy_change_sets
FOR EACH ROW EXECUTE FUNCTION policy_change_sets_append_only();

CREATE TRIGGER policy_change_sets_no_truncate
BEFORE TRUNCATE ON policy_change_sets
FOR EACH STATEMENT EXECUTE FUNCTION policy_change_sets_append_only();

-- Four-eyes review: a change set touching a key that needs review is a change request until a
-- second superuser approves it (applying it) or rejects it, or its author withdraws it.
CREATE TABLE policy_change_requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author_id BIGINT NULL,
    author_email TEXT NOT NULL CHECK (char_length(author_email) > 0),
    created_at TEXT NOT NULL,
    reason TEXT NULL CHECK (reason IS NULL OR char_length(reason) <= 500),
    kind TEXT NOT NULL CHECK (kind IN ('apply', 'restore_revision', 'restore_run')),
    restored_revision BIGINT NULL,
    restored_run BIGINT NULL,
    -- The changes as JSON, each with the key's admin version when requested.
    changes TEXT NOT NULL CHECK (changes::jsonb IS NOT NULL),
    status TEXT NOT NULL CHECK (status IN ('open', 'rejected', 'withdrawn', 'applied')),
    -- Bumped by every step, so two decisions on one request cannot both win.
    version BIGINT NOT NULL CHECK (version >= 1),
    decided_by TEXT NULL,
    decided_at TEXT NULL,
    decision_comment TEXT NULL CHECK (decision_comment IS NULL OR char_length(decision_comment) <= 500),
    applied_change_set_id BIGINT NULL REFERENCES policy_change_sets (id)
);
CREATE INDEX policy_change_requests_status ON policy_change_requests (status, id);

-- Every step of every request, append-only: requested, edited, approved, rejected, withdrawn,
-- applied, stale.
CREATE TABLE policy_change_request_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id BIGINT NOT NULL REFERENCES policy_change_requests (id),
    action TEXT NOT NULL CHECK (action IN ('requested', 'edited', 'approved', 'rejected', 'withdrawn', 'applied', 'stale')),
    actor_id BIGINT NULL,
    actor_email TEXT NOT NULL CHECK (char_length(actor_email) > 0),
    at TEXT NOT NULL,
    comment TEXT NULL CHECK (comment IS NULL OR char_length(comment) <= 2000)
);
CREATE INDEX policy_change_request_events_request ON policy_change_request_events (request_id, id);

CREATE FUNCTION policy_change_request_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'policy_change_request_events is append-only: % is not allowed', TG_OP;
END;
$$;

CREATE TRIGGER policy_change_request_events_no_update_delete
BEFORE UPDATE OR DELETE ON policy_change_request_events
FOR EACH ROW EXECUTE FUNCTION policy_change_request_events_append_only();

CREATE TRIGGER policy_change_request_events_no_truncate
BEFORE TRUNCATE ON policy_change_request_events
FOR EACH STATEMENT EXECUTE FUNCTION policy_change_request_events_append_only();
