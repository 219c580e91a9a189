-- What workers report about a run (PRODUCT.md: a provider that ignores caching is a warning,
-- never a failure), who has worked on it, and which policy produced each block's result.
CREATE TABLE run_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('info', 'warning')),
    -- A short machine-readable name such as caching_ignored.
    code TEXT NOT NULL CHECK (char_length(code) BETWEEN 1 AND 64),
    message TEXT NOT NULL CHECK (char_length(message) <= 1000),
    block_uid TEXT NULL,
    -- The worker name and the token it reported with.
    worker TEXT NOT NULL,
    token_id BIGINT NULL
);
CREATE INDEX run_events_run ON run_events (run_id, id);

-- Every (run, token, worker name) that claimed, completed a batch or reported, and when (a
-- single block's completion only follows a claim, and is not recorded again).
CREATE TABLE run_workers (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    token_id BIGINT NOT NULL,
    worker TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    PRIMARY KEY (run_id, token_id, worker)
);
CREATE INDEX run_workers_seen ON run_workers (last_seen_at);

-- The model, temperature and max tokens the run's snapshot gave a block when its result was
-- stored, so a reader of a result can tell which policy produced it.
ALTER TABLE blocks ADD COLUMN result_model TEXT NULL;
ALTER TABLE blocks ADD COLUMN result_temperature TEXT NULL;
ALTER TABLE blocks ADD COLUMN result_max_tokens BIGINT NULL;
-- The batch a claim packed the block into (when the snapshot enables batching): completing a
-- batch names it, and a block claimed again gets a new one.
ALTER TABLE blocks ADD COLUMN batch_id TEXT NULL;
CREATE INDEX blocks_batch ON blocks (run_id, batch_id);

-- Every batch's blocks as the claim packed them, so a completion can tell a block that left the
-- batch (claimed again after its lease expired) from one that was never in it.
CREATE TABLE run_batches (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    batch_id TEXT NOT NULL,
    block_uid TEXT NOT NULL,
    PRIMARY KEY (run_id, batch_id, block_uid)
);
