-- People who sign in to the web app. Workers never sign in with a password: they use the
-- bearer tokens of 0101_worker_tokens.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    -- Stored lower-cased by the application; the CHECK keeps a second spelling of the same
    -- address out even if some future writer forgets, and UNIQUE then makes the address
    -- unique regardless of case.
    email TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    -- A PHC string ($argon2id$v=19$...). The prefix CHECK refuses a plain-text password or a
    -- weaker algorithm written by mistake.
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    -- Two roles only (PRODUCT.md §1); anything else would be silently treated as neither.
    role TEXT NOT NULL CHECK (role IN ('superuser', 'member')),
    -- An integer flag (0/1) rather than a boolean so that both backends decode it the same way.
    -- A disabled account is kept, not deleted, so audit rows that name it stay meaningful.
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at TEXT NOT NULL
);

-- Failed sign-in attempts, kept for one hour, that drive the throttle: waits grow after five
-- failures for an account or for a client address. Kept in the database rather than in memory
-- so that several app instances sharing one PostgreSQL database throttle together.
CREATE TABLE sign_in_failures (
    id BIGSERIAL PRIMARY KEY,
    -- The lower-cased email as typed, whether or not such an account exists, so the throttle
    -- gives no hint about which accounts exist.
    account TEXT NOT NULL,
    client TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX sign_in_failures_account ON sign_in_failures (account, at);
CREATE INDEX sign_in_failures_client ON sign_in_failures (client, at);
