-- What a worker token may do, and which run it may touch. Tokens made before scopes could do
-- everything a worker does; they keep exactly that, so nothing running breaks.
-- Scopes are space-separated: runs:create, runs:work (claim, complete, fail), snapshot:read.
ALTER TABLE worker_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'runs:create runs:work snapshot:read';
-- NULL: any run; otherwise the one run the token is bound to.
ALTER TABLE worker_tokens ADD COLUMN run_id INTEGER NULL;
-- The token that holds a block's claim: only it may complete or fail the block (the worker name
-- in claimed_by is a label). NULL while unclaimed, and for claims made before this column.
ALTER TABLE blocks ADD COLUMN claimed_by_token INTEGER NULL;
