-- Personal API tokens: a superuser's bearer credential for /api/v1/policy, acting on their
-- behalf (changes are audited as `token:<name> (<owner email>)` with the owner's id). Only the
-- SHA-256 is stored. A token stops working at once when revoked, when it expires, or when its
-- owner is disabled or no longer a superuser.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    owner_id INTEGER NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    -- Space-separated: policy:read, policy:write, audit:read.
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NULL,
    last_used_at TEXT NULL,
    revoked_at TEXT NULL
);
