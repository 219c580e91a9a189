-- `INSERT OR REPLACE` deletes the old row and inserts a new one, which the UPDATE trigger on
-- the snapshot columns never sees. Refuse re-inserting an existing run id, so a snapshot cannot
-- be swapped that way. (PostgreSQL has no REPLACE; its upsert fires the UPDATE trigger.)
CREATE TRIGGER runs_no_replace
BEFORE INSERT ON runs
WHEN EXISTS (SELECT 1 FROM runs WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'the policy snapshot is immutable: replacing a run is not allowed');
END;
