-- The server processes sharing this database, each with the fingerprint of its env layer (the
-- POLICY__ variables it was started with), so that instances that disagree can be told apart:
-- two instances with different env layers would resolve the same key to different values.
CREATE TABLE instances (
    -- Random, drawn at each start.
    id TEXT PRIMARY KEY,
    -- SHA-256 of the env layer's key=value lines, sorted.
    env_fingerprint TEXT NOT NULL CHECK (length(env_fingerprint) = 64),
    started_at TEXT NOT NULL,
    -- Refreshed every minute while the instance runs; an instance unseen for three minutes is gone.
    seen_at TEXT NOT NULL
);
