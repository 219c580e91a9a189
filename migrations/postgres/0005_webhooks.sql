-- Webhooks: endpoints told about policy changes, change requests and new runs. Deliveries are an
-- outbox written in the same transaction as the change, so none is sent for a change that
-- rolled back and none is lost to a crash or restart; a background task sends them.
CREATE TABLE webhooks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url TEXT NOT NULL CHECK (url LIKE 'http://%' OR url LIKE 'https://%'),
    -- The HMAC-SHA256 key deliveries are signed with (the receiver holds the same).
    secret TEXT NOT NULL CHECK (char_length(secret) >= 16),
    -- Space-separated event names, or `*`.
    events TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT NULL
);

CREATE TABLE webhook_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id BIGINT NOT NULL REFERENCES webhooks (id),
    event TEXT NOT NULL,
    payload TEXT NOT NULL CHECK (payload::jsonb IS NOT NULL),
    created_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_status INTEGER NULL,
    last_error TEXT NULL,
    delivered_at TEXT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
