-- The policy revision: one counter for the whole policy, bumped by every change.
-- A single row (id = 1, enforced by the CHECK) so that every write transaction can take
-- the write lock by updating it first, which also orders all changes.
CREATE TABLE policy_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL DEFAULT 0 CHECK (revision >= 0)
);
INSERT INTO policy_revision (id, revision) VALUES (1, 0);
