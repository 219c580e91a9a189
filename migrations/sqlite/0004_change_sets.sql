-- A change set: one or more key changes with one reason, applied in one transaction at one
-- policy revision. Each key's audit row names its change set; restores say what they restored.
CREATE TABLE policy_change_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('apply', 'restore_revision', 'restore_run')),
    actor_id INTEGER NULL,
    actor_email TEXT NOT NULL CHECK (length(actor_email) > 0),
    at TEXT NOT NULL,
    reason TEXT NULL CHECK (reason IS NULL OR length(reason) <= 500),
    policy_revision INTEGER NOT NULL UNIQUE,
    -- For a restore: the revision, or the run whose snapshot, that was restored.
    restored_revision INTEGER NULL,
    restored_run INTEGER NULL,
    -- Set when the change set is an approved change request.
    request_id INTEGER NULL
);

-- What was in force before and after each change: the effective value (canonical JSON) and the
-- layer it came from. Rows written before this migration have NULLs here.
ALTER TABLE admin_runtime_policy_audit ADD COLUMN from_effective TEXT NULL CHECK (from_effective IS NULL OR json_valid(from_effective));
ALTER TABLE admin_runtime_policy_audit ADD COLUMN from_source TEXT NULL CHECK (from_source IS NULL OR from_source IN ('default', 'env', 'admin'));
ALTER TABLE admin_runtime_policy_audit ADD COLUMN to_effective TEXT NULL CHECK (to_effective IS NULL OR json_valid(to_effective));
ALTER TABLE admin_runtime_policy_audit ADD COLUMN to_source TEXT NULL CHECK (to_source IS NULL OR to_source IN ('default', 'env', 'admin'));
ALTER TABLE admin_runtime_policy_audit ADD COLUMN change_set_id INTEGER NULL REFERENCES policy_change_sets (id);

CREATE INDEX admin_runtime_policy_audit_revision ON admin_runtime_policy_audit (policy_revision);

-- Change sets are evidence too: never changed, never removed.
CREATE TRIGGER policy_change_sets_no_update
BEFORE UPDATE ON policy_change_sets
BEGIN
    SELECT RAISE(ABORT, 'policy_change_sets is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER policy_change_sets_no_delete
BEFORE DELETE ON policy_change_sets
BEGIN
    SELECT RAISE(ABORT, 'policy_change_sets is append-only: DELETE is not allowed');
END;

CREATE TRIGGER policy_change_sets_no_replace
BEFORE INSERT ON policy_change_sets
WHEN EXISTS (SELECT 1 FROM policy_change_sets WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'policy_change_sets is append-only: replacing a row is not allowed');
END;

-- Four-eyes review: a change set touching a key that needs review is a change request until a
-- second superuser approves it (applying it) or rejects it, or its author withdraws it.
CREATE TABLE policy_change_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id INTEGER NULL,
    author_email TEXT NOT NULL CHECK (length(author_email) > 0),
    created_at TEXT NOT NULL,
    reason TEXT NULL CHECK (reason IS NULL OR length(reason) <= 500),
    kind TEXT NOT NULL CHECK (kind IN ('apply', 'restore_revision', 'restore_run')),
    restored_revision INTEGER NULL,
    restored_run INTEGER NULL,
    -- The changes as JSON, each with the key's admin version when requested.
    changes TEXT NOT NULL CHECK (json_valid(changes)),
    status TEXT NOT NULL CHECK (status IN ('open', 'rejected', 'withdrawn', 'applied')),
    -- Bumped by every step, so two decisions on one request cannot both win.
    version INTEGER NOT NULL CHECK (version >= 1),
    decided_by TEXT NULL,
    decided_at TEXT NULL,
    decision_comment TEXT NULL CHECK (decision_comment IS NULL OR length(decision_comment) <= 500),
    applied_change_set_id INTEGER NULL REFERENCES policy_change_sets (id)
);
CREATE INDEX policy_change_requests_status ON policy_change_requests (status, id);

-- Every step of every request, append-only: requested, edited, approved, rejected, withdrawn,
-- applied, stale.
CREATE TABLE policy_change_request_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES policy_change_requests (id),
    action TEXT NOT NULL CHECK (action IN ('requested', 'edited', 'approved', 'rejected', 'withdrawn', 'applied', 'stale')),
    actor_id INTEGER NULL,
    actor_email TEXT NOT NULL CHECK (length(actor_email) > 0),
    at TEXT NOT NULL,
    comment TEXT NULL CHECK (comment IS NULL OR length(comment) <= 2000)
);
CREATE INDEX policy_change_request_events_request ON policy_change_request_events (request_id, id);

CREATE TRIGGER policy_change_request_events_no_update
BEFORE UPDATE ON policy_change_request_events
BEGIN
    SELECT RAISE(ABORT, 'policy_change_request_events is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER policy_change_request_events_no_delete
BEFORE DELETE ON policy_change_request_events
BEGIN
    SELECT RAISE(ABORT, 'policy_change_request_events is append-only: DELETE is not allowed');
END;

CREATE TRIGGER policy_change_request_events_no_replace
BEFORE INSERT ON policy_change_request_events
WHEN EXISTS (SELECT 1 FROM policy_change_request_events WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'policy_change_request_events is append-only: replacing a row is not allowed');
END;
