-- Bearer tokens for workers (PRODUCT.md §1): they may read a run's policy snapshot, nothing else.
CREATE TABLE worker_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The operator's handle for revoking and listing; UNIQUE so `token revoke NAME` names one token.
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    -- Only the SHA-256 of the token (64 lower-case hex digits) is stored, so a copy of the
    -- database does not hand out working tokens. UNIQUE because lookups go by hash.
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at TEXT NOT NULL,
    -- Set once when the token is revoked; a revoked token is kept so the name stays taken and
    -- the history stays visible in `token list`.
    revoked_at TEXT
);
