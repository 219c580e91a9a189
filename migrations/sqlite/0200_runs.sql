-- Runs and their blocks (PRODUCT.md §6). A run freezes the effective policy when it is created;
-- workers then claim its blocks in batches under that frozen policy, never today's baseline.
CREATE TABLE runs (
    -- AUTOINCREMENT so an id is never reused: a worker holding the id of a deleted run can never
    -- reach another run's blocks or snapshot.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The signed-in creator; NULL for runs created through the API (a worker token) or the CLI.
    -- Members see only the runs whose creator id is theirs.
    created_by_user_id INTEGER NULL REFERENCES users (id),
    -- Who created it, as shown on the page: an email, `token:<name>` or `cli:<os user>`.
    created_by TEXT NOT NULL CHECK (length(created_by) > 0),
    created_at TEXT NOT NULL,
    -- pending: nothing claimed yet; running: claimed at least once; done: every block done;
    -- failed: every block finished and at least one failed. Anything else would be shown as
    -- neither finished nor in progress.
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    -- The policy snapshot: every key's value, the layer it came from and its admin version,
    -- as JSON text (the same text the SHA-256 below is computed over).
    policy_snapshot TEXT NOT NULL CHECK (json_valid(policy_snapshot)),
    -- SHA-256 of policy_snapshot, lower-case hex: the ETag workers get with the snapshot.
    snapshot_sha256 TEXT NOT NULL CHECK (length(snapshot_sha256) = 64),
    -- The policy revision the snapshot was resolved at (policy_revision.revision).
    policy_revision INTEGER NOT NULL CHECK (policy_revision >= 0),
    -- Block counters kept in step with `blocks` in the same transactions, so the run list shows
    -- progress without counting blocks, and so the last block to finish sets the final status
    -- atomically (the counter update is a single-row UPDATE, serialised by the row lock).
    block_count INTEGER NOT NULL CHECK (block_count >= 1),
    blocks_done INTEGER NOT NULL DEFAULT 0 CHECK (blocks_done >= 0),
    blocks_failed INTEGER NOT NULL DEFAULT 0 CHECK (blocks_failed >= 0),
    CHECK (blocks_done + blocks_failed <= block_count)
);
CREATE INDEX runs_creator ON runs (created_by_user_id, id);

-- A snapshot never changes after creation: an edit made mid-run must not change behaviour
-- already in flight, whatever the application (or an operator with a SQL shell) does.
CREATE TRIGGER runs_snapshot_immutable
BEFORE UPDATE OF policy_snapshot, snapshot_sha256, policy_revision ON runs
BEGIN
    SELECT RAISE(ABORT, 'runs: the policy snapshot is immutable (policy_snapshot, snapshot_sha256, policy_revision)');
END;

-- The units of work of a run.
CREATE TABLE blocks (
    -- A run's blocks go when the run goes.
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- The stable identity of a block: every claim, completion and failure names (run_id, block_uid).
    block_uid TEXT NOT NULL CHECK (length(block_uid) BETWEEN 1 AND 64),
    -- The claim order. An INTEGER, so that 2 < 10 < 100 (as text, "10" < "100" < "2").
    -- Unique per run: two blocks at one position would make the order ambiguous.
    block_index INTEGER NOT NULL CHECK (block_index >= 0),
    text TEXT NOT NULL,
    -- pending: claimable; claimed: held by a worker until its lease expires; done and failed are final.
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
    claimed_by TEXT NULL,
    claimed_at TEXT NULL,
    -- After this time a claim that was never completed is claimable again (a dead worker loses
    -- no block). Text in the fixed-width UTC form, so it compares as time.
    lease_expires_at TEXT NULL,
    -- Claims so far; also the fencing token: a completion must name the attempt it holds, so a
    -- worker whose lease expired cannot complete a block another worker now holds.
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- The worker's output (for the reference worker: the rendered prompt).
    result TEXT NULL,
    error TEXT NULL,
    finished_at TEXT NULL,
    PRIMARY KEY (run_id, block_uid),
    UNIQUE (run_id, block_index),
    -- A claimed block always says who holds it and until when; no other state holds a lease.
    CHECK ((state = 'claimed') = (claimed_by IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- The claim query: a run's claimable blocks in block_index order.
CREATE INDEX blocks_claim_order ON blocks (run_id, state, block_index);
