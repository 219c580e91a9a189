-- `INSERT OR REPLACE` deletes the old row and inserts a new one, and SQLite runs no DELETE
-- trigger for that unless recursive triggers are on. Without this trigger an audit row could be
-- rewritten by re-inserting its id. (PostgreSQL has no REPLACE; its upsert fires the UPDATE
-- trigger, which refuses it.)
CREATE TRIGGER admin_runtime_policy_audit_no_replace
BEFORE INSERT ON admin_runtime_policy_audit
WHEN EXISTS (SELECT 1 FROM admin_runtime_policy_audit WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'admin_runtime_policy_audit is append-only: replacing a row is not allowed');
END;
