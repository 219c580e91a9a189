//! Server-only half of sign-in and access control: users, password hashing, throttling,
//! worker tokens, sessions, and the guards every server function and page goes through.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash as PhcHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use leptos::prelude::{use_context, ServerFnError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::Semaphore;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::{AuthUser, Role};
use crate::config::{Backend, DatabaseUrl};
use crate::db::{format_ts, Db, DbOpenError};
use crate::server::AppState;

/// Idle timeout: a session unused this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Absolute timeout: a session this old is gone, however busy it was.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "rp_session";
/// Shortest password accepted by `user create`.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted anywhere; hashing a megabyte per request would be a cheap attack.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Failures (per account or per client address, within an hour) allowed before waits start.
pub const FREE_FAILURES: i64 = 5;
/// Longest wait between attempts once throttled.
pub const MAX_WAIT_SECS: i64 = 15 * 60;
/// Hard cap on failures per account per hour. The growing waits alone keep an account near
/// twenty failures an hour; the cap leaves room for the attempts that can be in flight at once
/// (the hashing queue) and still stays under 100.
pub const MAX_ACCOUNT_FAILURES_PER_HOUR: i64 = 100 - (HASH_RUNNING + HASH_QUEUE) as i64;
/// Hashes computed at once (each argon2id hash takes about 19 MiB and one core).
pub const HASH_RUNNING: usize = 2;
/// Sign-ins waiting for a hashing slot; one more is answered 429.
pub const HASH_QUEUE: usize = 16;

const SESSION_KEY: &str = "auth";

// ---------------------------------------------------------------------------------------------
// Errors

/// Everything that can go wrong in this feature, each with the status a client gets.
///
/// Deliberately not `std::error::Error`: `ServerFnError` has a blanket conversion from those
/// which would drop the status, so `?` in a server function goes through the `From` below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Unauthenticated,
    Forbidden,
    InvalidCredentials,
    Throttled { retry_after_secs: i64 },
    Busy,
    Invalid { field: &'static str, message: String },
    Internal,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Unauthenticated => f.write_str("Sign in first."),
            AuthError::Forbidden => f.write_str("This needs a superuser."),
            AuthError::InvalidCredentials => f.write_str("Wrong email or password."),
            AuthError::Throttled { retry_after_secs } => {
                write!(f, "Too many failed sign-ins; try again in {retry_after_secs} seconds.")
            }
            AuthError::Busy => f.write_str("The server is busy signing people in; try again in a moment."),
            AuthError::Invalid { field, message } => write!(f, "{field}: {message}"),
            AuthError::Internal => f.write_str("Internal error; the server log has the details."),
        }
    }
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Unauthenticated | AuthError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden => StatusCode::FORBIDDEN,
            AuthError::Throttled { .. } | AuthError::Busy => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Invalid { .. } => StatusCode::BAD_REQUEST,
            AuthError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::Invalid { field, message: message.into() }
    }

    /// Turns the error into what a server function returns, and sets the response status.
    ///
    /// A plain HTML form post (JavaScript off) is answered with a redirect back to the form,
    /// which carries the error; its status is left alone so the browser follows the redirect.
    pub fn into_server_fn_error(self) -> ServerFnError {
        if !is_plain_form_post() {
            if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
                res.set_status(self.status());
            }
        }
        ServerFnError::ServerError(self.to_string())
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error in auth");
        AuthError::Internal
    }
}

impl From<AuthError> for ServerFnError {
    fn from(e: AuthError) -> Self {
        e.into_server_fn_error()
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        (self.status(), self.to_string()).into_response()
    }
}

/// True when the current server function call is an HTML form submitted without JavaScript.
pub fn is_plain_form_post() -> bool {
    use_context::<axum::http::request::Parts>()
        .and_then(|p| p.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(|v| v.contains("text/html")))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Input newtypes: parsed once at the edge.

/// A syntactically plausible, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, AuthError> {
        let e = normalize_email(raw);
        let bad = |m: &str| AuthError::invalid("EMAIL", m);
        if e.len() < 3 || e.len() > 254 {
            return Err(bad("must be 3 to 254 characters long"));
        }
        if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces"));
        }
        match e.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => {}
            _ => return Err(bad("must look like name@example.com")),
        }
        Ok(Email(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The form an email is compared in: trimmed and lower-cased.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// A new password that meets the length rules. Never printed.
#[derive(Clone)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

impl NewPassword {
    pub fn parse(raw: &str) -> Result<NewPassword, AuthError> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AuthError::invalid(
                "password",
                format!("must be at least {MIN_PASSWORD_CHARS} characters long"),
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::invalid("password", format!("must be at most {MAX_PASSWORD_BYTES} bytes long")));
        }
        Ok(NewPassword(raw.to_string()))
    }
}

/// A stored argon2id hash in PHC form. Deliberately not `Serialize`, and its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

impl PasswordHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A worker token's name: 1 to 64 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    pub fn parse(raw: &str) -> Result<TokenName, AuthError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(TokenName(raw.to_string()))
        } else {
            Err(AuthError::invalid("NAME", "must be 1 to 64 letters, digits, '.', '_' or '-'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where to go after signing in: `next` when it is a path on this site, else the settings
/// page. A path starts with one `/`; `//host`, a scheme, a backslash (which browsers read as
/// `/`) or a control character (which browsers strip, turning `/\t/host` into `//host`) would
/// let a link send people to another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && n.len() <= 2048 =>
        {
            n.to_string()
        }
        _ => crate::app::HOME_PATH.to_string(),
    }
}

/// `/login?next=<path>`, with `path` percent-encoded.
pub fn login_path_for(next: &str) -> String {
    super::login_href(next)
}

// ---------------------------------------------------------------------------------------------
// Password hashing: off the async threads, at most HASH_RUNNING at once, bounded queue.

/// Runs argon2 work on the blocking pool with a fixed number of slots and a bounded queue, so a
/// sign-in flood gets quick 429s instead of an unbounded backlog that starves other requests.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<HasherInner>,
}

struct HasherInner {
    running: Arc<Semaphore>,
    admitted: AtomicUsize,
    capacity: usize,
    /// Verified for unknown emails, so an answer takes as long whether or not the account exists.
    dummy: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("in_flight", &self.in_flight()).field("capacity", &self.inner.capacity).finish()
    }
}

/// Counts one admitted job until dropped, wherever the job is when that happens.
struct Admission(Arc<HasherInner>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new(HASH_RUNNING, HASH_QUEUE)
    }
}

impl Hasher {
    /// `running` hashes at once, `queue` more waiting; computes the dummy hash (blocking, once).
    pub fn new(running: usize, queue: usize) -> Hasher {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let dummy = hash_blocking(&hex::encode(secret)).unwrap_or_default();
        Hasher {
            inner: Arc::new(HasherInner {
                running: Arc::new(Semaphore::new(running)),
                admitted: AtomicUsize::new(0),
                capacity: running + queue,
                dummy,
            }),
        }
    }

    /// Jobs running or waiting.
    pub fn in_flight(&self) -> usize {
        self.inner.admitted.load(Ordering::SeqCst)
    }

    /// Runs `job` on the blocking pool once a slot is free; `Busy` at once if the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let before = self.inner.admitted.fetch_add(1, Ordering::SeqCst);
        let admission = Admission(self.inner.clone());
        if before >= self.inner.capacity {
            return Err(AuthError::Busy);
        }
        let permit = self.inner.running.clone().acquire_owned().await.map_err(|_| AuthError::Internal)?;
        tokio::task::spawn_blocking(move || {
            // Both are held until the work is done, even if the caller has gone away.
            let _held = (permit, admission);
            job()
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing task failed");
            AuthError::Internal
        })
    }

    pub async fn hash(&self, password: NewPassword) -> Result<PasswordHash, AuthError> {
        let phc = self.run(move || hash_blocking(&password.0)).await?.map_err(|e| {
            tracing::error!(error = %e, "argon2 hashing failed");
            AuthError::Internal
        })?;
        Ok(PasswordHash(phc))
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is none.
    pub async fn verify(&self, password: String, hash: Option<PasswordHash>) -> Result<bool, AuthError> {
        let inner = self.inner.clone();
        self.run(move || {
            let ok = verify_blocking(&password, hash.as_ref().map(|h| h.0.as_str()).unwrap_or(&inner.dummy));
            ok && hash.is_some()
        })
        .await
    }
}

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    // Argon2::default() is argon2id, version 0x13, with the OWASP parameters (19 MiB, t=2, p=1).
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PhcHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Users

/// A row of `user list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: AuthUser,
    pub disabled: bool,
    pub created_at: String,
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<UserRecord, AuthError> {
    let role: String = row.try_get("role")?;
    let role = Role::parse(&role).ok_or_else(|| {
        tracing::error!(role, "unknown role in the users table");
        AuthError::Internal
    })?;
    Ok(UserRecord {
        user: AuthUser { id: row.try_get("id")?, email: row.try_get("email")?, role },
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn count_users(db: &Db) -> Result<i64, AuthError> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&db.pool).await?.try_get("n")?)
}

/// Creates a user; `Invalid` naming EMAIL when the address is taken (in any case).
pub async fn create_user(db: &Db, email: &Email, role: Role, hash: &PasswordHash) -> Result<AuthUser, AuthError> {
    let mut tx = db.begin_write().await?;
    let taken = sqlx::query("SELECT id FROM users WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if taken {
        return Err(AuthError::invalid("EMAIL", format!("a user {} already exists", email.as_str())));
    }
    let row = sqlx::query(
        "INSERT INTO users (email, password_hash, role, disabled, created_at) VALUES ($1, $2, $3, 0, $4) RETURNING id",
    )
    .bind(email.as_str())
    .bind(hash.as_str())
    .bind(role.as_str())
    .bind(format_ts(Utc::now()))
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = row.try_get("id")?;
    tx.commit().await?;
    Ok(AuthUser { id, email: email.as_str().to_string(), role })
}

/// Disables a user; their sessions stop working at their next request. `Invalid` naming EMAIL
/// when there is no such user.
pub async fn disable_user(db: &Db, email: &Email) -> Result<(), AuthError> {
    let done = sqlx::query("UPDATE users SET disabled = 1 WHERE email = $1")
        .bind(email.as_str())
        .execute(&db.pool)
        .await?
        .rows_affected();
    if done == 0 {
        return Err(AuthError::invalid("EMAIL", format!("no user {}", email.as_str())));
    }
    Ok(())
}

pub async fn list_users(db: &Db) -> Result<Vec<UserRecord>, AuthError> {
    let rows = sqlx::query("SELECT id, email, role, disabled, created_at FROM users ORDER BY email")
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(user_from_row).collect()
}

/// The user behind a session, or `None` when they no longer exist or are disabled.
pub async fn active_user(db: &Db, id: i64) -> Result<Option<AuthUser>, AuthError> {
    let row = sqlx::query("SELECT id, email, role, disabled, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(row) => {
            let rec = user_from_row(&row)?;
            Ok((!rec.disabled).then_some(rec.user))
        }
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Throttling

/// Seconds to wait after the latest failure, given the failures in the last hour.
pub fn wait_after(failures: i64) -> i64 {
    if failures < FREE_FAILURES {
        0
    } else {
        let exp = (failures - FREE_FAILURES).min(20) as u32;
        (1i64 << exp).min(MAX_WAIT_SECS)
    }
}

async fn failure_window(db: &Db, column: &str, key: &str, since: &str) -> Result<(i64, Option<String>), AuthError> {
    // `column` is one of two fixed names, never input.
    let sql = format!("SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE {column} = $1 AND at > $2");
    let row = sqlx::query(&sql).bind(key).bind(since).fetch_one(&db.pool).await?;
    Ok((row.try_get("n")?, row.try_get("latest")?))
}

/// `Throttled` when the account or the client address has to wait before trying again.
pub async fn check_throttle(db: &Db, account: &str, client: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
    let since = format_ts(now - chrono::Duration::hours(1));
    let mut retry = 0i64;
    for (column, key) in [("account", account), ("client", client)] {
        let (n, latest) = failure_window(db, column, key, &since).await?;
        let latest = latest.as_deref().and_then(crate::db::parse_ts);
        if column == "account" && n >= MAX_ACCOUNT_FAILURES_PER_HOUR {
            retry = retry.max(60 * 60);
        }
        if let Some(latest) = latest {
            let until = latest + chrono::Duration::seconds(wait_after(n));
            retry = retry.max((until - now).num_seconds() + i64::from((until - now).subsec_nanos() > 0));
        }
    }
    if retry > 0 {
        Err(AuthError::Throttled { retry_after_secs: retry })
    } else {
        Ok(())
    }
}

pub async fn record_failure(db: &Db, account: &str, client: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
    // Forget failures older than the window while we are here, so the table stays small.
    sqlx::query("DELETE FROM sign_in_failures WHERE at < $1")
        .bind(format_ts(now - chrono::Duration::hours(1)))
        .execute(&db.pool)
        .await?;
    sqlx::query("INSERT INTO sign_in_failures (account, client, at) VALUES ($1, $2, $3)")
        .bind(account)
        .bind(client)
        .bind(format_ts(now))
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Checks an email and password, with throttling and a dummy hash for unknown accounts. Every
/// failure that reaches the hash gives the same `InvalidCredentials`.
pub async fn authenticate(state: &AppState, email: &str, password: &str, client: &str) -> Result<AuthUser, AuthError> {
    let db = &state.db;
    let account = normalize_email(email);
    // Long enough for any real address; a longer one cannot exist, and is kept short in the table.
    let account: String = account.chars().take(254).collect();
    let now = Utc::now();
    check_throttle(db, &account, client, now).await?;
    let row = sqlx::query("SELECT id, email, role, disabled, created_at, password_hash FROM users WHERE email = $1")
        .bind(&account)
        .fetch_optional(&db.pool)
        .await?;
    let (record, hash) = match row {
        Some(row) => (Some(user_from_row(&row)?), Some(PasswordHash(row.try_get("password_hash")?))),
        None => (None, None),
    };
    let password = if password.len() > MAX_PASSWORD_BYTES { String::new() } else { password.to_string() };
    let ok = state.auth.hasher.verify(password, hash).await?;
    match record {
        Some(rec) if ok && !rec.disabled => {
            sqlx::query("DELETE FROM sign_in_failures WHERE account = $1").bind(&account).execute(&db.pool).await?;
            Ok(rec.user)
        }
        _ => {
            record_failure(db, &account, client, Utc::now()).await?;
            Err(AuthError::InvalidCredentials)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Worker tokens

/// A worker token that passed [`verify_worker_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerToken {
    pub id: i64,
    pub name: String,
}

/// A row of `token list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and returns it; only its SHA-256 is stored, so this is the only time it
/// can be seen. `Invalid` naming NAME when the name is taken.
pub async fn create_token(db: &Db, name: &TokenName) -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("rpw_{}", hex::encode(bytes));
    let mut tx = db.begin_write().await?;
    let taken = sqlx::query("SELECT id FROM worker_tokens WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if taken {
        return Err(AuthError::invalid("NAME", format!("a token named {} already exists", name.as_str())));
    }
    sqlx::query("INSERT INTO worker_tokens (name, token_hash, created_at) VALUES ($1, $2, $3)")
        .bind(name.as_str())
        .bind(token_hash(&token))
        .bind(format_ts(Utc::now()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(token)
}

/// Revokes a token at once. `Invalid` naming NAME when there is no live token by that name.
pub async fn revoke_token(db: &Db, name: &TokenName) -> Result<(), AuthError> {
    let done = sqlx::query("UPDATE worker_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
        .bind(format_ts(Utc::now()))
        .bind(name.as_str())
        .execute(&db.pool)
        .await?
        .rows_affected();
    if done == 0 {
        return Err(AuthError::invalid("NAME", format!("no live token named {}", name.as_str())));
    }
    Ok(())
}

pub async fn list_tokens(db: &Db) -> Result<Vec<TokenRecord>, AuthError> {
    let rows = sqlx::query("SELECT name, created_at, revoked_at FROM worker_tokens ORDER BY name")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenRecord {
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Checks `Authorization: Bearer <token>` against the live worker tokens: `Unauthenticated`
/// (401) when it is missing, malformed, unknown or revoked. For the worker API routes.
pub async fn verify_worker_token(db: &Db, headers: &HeaderMap) -> Result<WorkerToken, AuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or(AuthError::Unauthenticated)?;
    let row = sqlx::query("SELECT id, name FROM worker_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(token_hash(token))
        .fetch_optional(&db.pool)
        .await?
        .ok_or(AuthError::Unauthenticated)?;
    Ok(WorkerToken { id: row.try_get("id")?, name: row.try_get("name")? })
}

/// Axum extractor for worker API handlers: `async fn h(worker: WorkerToken, ...)`.
impl axum::extract::FromRequestParts<AppState> for WorkerToken {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        verify_worker_token(&state.db, &parts.headers).await
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// The session store, in the same database as everything else.
#[derive(Clone, Debug)]
pub enum SessionBackend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SessionBackend {
    /// Opens a pool of the concrete type the store needs, beside the app's `AnyPool`, and
    /// creates the store's table.
    pub async fn open(url: &DatabaseUrl) -> Result<SessionBackend, DbOpenError> {
        let err = |e: sqlx::Error| DbOpenError(format!("DATABASE_URL: session store: {}", e.to_string().replace('\n', " ")));
        match url.backend {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url.as_str())
                    .map_err(err)?
                    .busy_timeout(Duration::from_secs(10))
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .create_if_missing(true);
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(err)?;
                let store = SqliteStore::new(pool);
                store.migrate().await.map_err(err)?;
                Ok(SessionBackend::Sqlite(store))
            }
            Backend::Postgres => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url.as_str())
                    .await
                    .map_err(err)?;
                let store = PostgresStore::new(pool);
                store.migrate().await.map_err(err)?;
                Ok(SessionBackend::Postgres(store))
            }
        }
    }

    /// Deletes expired sessions every five minutes, for as long as the server runs.
    pub fn spawn_cleanup(&self) {
        use tower_sessions::ExpiredDeletion;
        let period = tokio::time::Duration::from_secs(300);
        match self.clone() {
            SessionBackend::Sqlite(s) => {
                tokio::spawn(async move {
                    if let Err(e) = s.continuously_delete_expired(period).await {
                        tracing::error!(error = %e, "expired-session cleanup stopped");
                    }
                });
            }
            SessionBackend::Postgres(s) => {
                tokio::spawn(async move {
                    if let Err(e) = s.continuously_delete_expired(period).await {
                        tracing::error!(error = %e, "expired-session cleanup stopped");
                    }
                });
            }
        }
    }

    /// Wraps `router` in the session layer.
    pub fn layer(&self, router: Router, cookie_secure: bool) -> Router {
        fn configure<S: tower_sessions::SessionStore + Clone>(store: S, secure: bool) -> SessionManagerLayer<S> {
            SessionManagerLayer::new(store)
                .with_name(SESSION_COOKIE)
                .with_http_only(true)
                .with_same_site(SameSite::Lax)
                .with_secure(secure)
                .with_path("/")
                .with_expiry(Expiry::OnInactivity(CookieDuration::seconds(IDLE_TIMEOUT.as_secs() as i64)))
        }
        match self {
            SessionBackend::Sqlite(s) => router.layer(configure(s.clone(), cookie_secure)),
            SessionBackend::Postgres(s) => router.layer(configure(s.clone(), cookie_secure)),
        }
    }
}

/// Everything sign-in needs beside the database; part of [`AppState`].
#[derive(Clone, Debug)]
pub struct AuthServices {
    pub hasher: Hasher,
    pub sessions: SessionBackend,
    pub cookie_secure: bool,
    /// `PUBLIC_ORIGIN`, for the same-origin check behind a proxy that rewrites `Host`.
    pub public_origin: Option<String>,
    /// `TRUST_PROXY`: the client address comes from `X-Forwarded-For`.
    pub trust_proxy: bool,
}

impl AuthServices {
    pub async fn open(url: &DatabaseUrl, cookie_secure: bool) -> Result<AuthServices, DbOpenError> {
        let sessions = SessionBackend::open(url).await?;
        let hasher = tokio::task::spawn_blocking(Hasher::default)
            .await
            .map_err(|e| DbOpenError(format!("cannot start the password hasher: {e}")))?;
        Ok(AuthServices { hasher, sessions, cookie_secure, public_origin: None, trust_proxy: false })
    }
}

/// What the session remembers about a sign-in. Times are Unix seconds.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct SessionAuth {
    user_id: i64,
    signed_in_at: i64,
    last_seen: i64,
}

/// True once a session (times in Unix seconds) is past its idle or its absolute timeout; the
/// absolute one holds however active the session has been.
fn session_expired(signed_in_at: i64, last_seen: i64, now: i64) -> bool {
    now - signed_in_at >= ABSOLUTE_TIMEOUT.as_secs() as i64 || now - last_seen >= IDLE_TIMEOUT.as_secs() as i64
}

/// Starts a signed-in session: a new session id (so an id planted before sign-in is useless),
/// then the user and the sign-in time for the absolute timeout.
pub async fn start_session(session: &Session, user: &AuthUser) -> Result<(), AuthError> {
    let now = Utc::now().timestamp();
    session.cycle_id().await.map_err(session_error)?;
    session
        .insert(SESSION_KEY, SessionAuth { user_id: user.id, signed_in_at: now, last_seen: now })
        .await
        .map_err(session_error)
}

/// Ends the session: its data is deleted from the store and the cookie removed.
pub async fn end_session(session: &Session) -> Result<(), AuthError> {
    session.flush().await.map_err(session_error)
}

fn session_error(e: tower_sessions::session::Error) -> AuthError {
    tracing::error!(error = %e, "session store error");
    AuthError::Internal
}

/// The user the current request is made by, put into the request's extensions by
/// [`load_user`]; `None` is anonymous.
#[derive(Debug, Clone, Default)]
pub struct RequestUser(pub Option<AuthUser>);

async fn resolve_session(state: &AppState, session: &Session) -> Result<Option<AuthUser>, AuthError> {
    let Some(mut auth) = session.get::<SessionAuth>(SESSION_KEY).await.map_err(session_error)? else {
        return Ok(None);
    };
    let now = Utc::now().timestamp();
    let expired = session_expired(auth.signed_in_at, auth.last_seen, now);
    let user = if expired { None } else { active_user(&state.db, auth.user_id).await? };
    match user {
        None => {
            end_session(session).await?;
            Ok(None)
        }
        Some(user) => {
            // Writing the session pushes its idle expiry forward; once a minute is enough.
            if now - auth.last_seen >= 60 {
                auth.last_seen = now;
                session.insert(SESSION_KEY, auth).await.map_err(session_error)?;
            }
            Ok(Some(user))
        }
    }
}

/// Middleware: loads the signed-in user from the database on every request (so a disabled
/// user is out at their next request) and stores it as [`RequestUser`].
pub async fn load_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let session = req.extensions().get::<Session>().cloned();
    let user = match session {
        Some(s) => match resolve_session(&state, &s).await {
            Ok(u) => u,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    req.extensions_mut().insert(RequestUser(user));
    next.run(req).await
}

/// The paths of the superuser pages.
pub fn is_superuser_page(path: &str) -> bool {
    let home = crate::app::HOME_PATH;
    path == home || path.strip_prefix(home).is_some_and(|rest| rest.starts_with('/'))
}

/// Middleware for the superuser pages: anonymous visitors go to `/login?next=<path>`; a member
/// gets the page's 403 rendering with status 403.
pub async fn guard_pages(req: Request, next: Next) -> Response {
    if !is_superuser_page(req.uri().path()) {
        return next.run(req).await;
    }
    let user = req.extensions().get::<RequestUser>().and_then(|u| u.0.clone());
    match user {
        None => {
            let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            Redirect::to(&login_path_for(target)).into_response()
        }
        Some(u) if u.role == Role::Superuser => next.run(req).await,
        Some(_) => {
            let mut res = next.run(req).await;
            *res.status_mut() = StatusCode::FORBIDDEN;
            res
        }
    }
}

/// Paths of the server functions that anonymous visitors may call.
pub fn public_server_fn_paths() -> [&'static str; 3] {
    use leptos::server_fn::ServerFn;
    [super::api::Login::PATH, super::api::Logout::PATH, super::api::CurrentUser::PATH]
}

/// Every registered server function: path and HTTP method. New ones appear here on their own.
pub fn server_fn_paths() -> Vec<(&'static str, Method)> {
    let mut v: Vec<_> = leptos::server_fn::axum::server_fn_paths().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Middleware, deny by default: every server function except the public few needs a signed-in
/// user before its arguments are even read (each function then checks the role itself).
pub async fn guard_server_fns(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let is_server_fn = leptos::server_fn::axum::server_fn_paths().any(|(p, _)| p == path);
    if is_server_fn && !public_server_fn_paths().contains(&path) {
        let signed_in = req.extensions().get::<RequestUser>().is_some_and(|u| u.0.is_some());
        if !signed_in {
            return AuthError::Unauthenticated.into_response();
        }
    }
    next.run(req).await
}

/// Middleware: a request that can change state (anything but GET, HEAD, OPTIONS) must come
/// from this site. `Origin` decides when present; otherwise `Sec-Fetch-Site`; a client that
/// sends neither (curl, a worker) is not a browser acting for someone else and passes.
pub async fn same_origin_only(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || is_same_site_for(req.headers(), state.auth.public_origin.as_deref()) {
        next.run(req).await
    } else {
        (StatusCode::FORBIDDEN, "Cross-site requests are refused.").into_response()
    }
}

/// True unless the headers say the request comes from another site.
pub fn is_same_site(headers: &HeaderMap) -> bool {
    is_same_site_for(headers, None)
}

/// Like [`is_same_site`], with `Origin` compared to the configured public origin when there is
/// one (behind a proxy the `Host` header may name the proxy's upstream instead).
pub fn is_same_site_for(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else { return false };
        if let Some(public) = public_origin {
            return origin.trim_end_matches('/').eq_ignore_ascii_case(public);
        }
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        return match (origin_host, host) {
            (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
            _ => false,
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => true,
    }
}

/// The client address for throttling: the connection's peer, or with `trust_proxy` the last
/// `X-Forwarded-For` entry (the address the nearest proxy saw).
pub fn client_address(parts: &axum::http::request::Parts, trust_proxy: bool) -> String {
    if trust_proxy {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
            .last();
        if let Some(ip) = forwarded {
            return ip.to_string();
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Wraps `router` in the auth layers, outermost first: same-origin check, sessions, loading the
/// user, then the server function and page guards.
pub fn layers(router: Router, state: &AppState) -> Router {
    let router = router
        .layer(axum::middleware::from_fn(guard_pages))
        .layer(axum::middleware::from_fn(guard_server_fns))
        .layer(axum::middleware::from_fn_with_state(state.clone(), load_user));
    let router = state.auth.sessions.layer(router, state.auth.cookie_secure);
    router.layer(axum::middleware::from_fn_with_state(state.clone(), same_origin_only))
}

// ---------------------------------------------------------------------------------------------
// The guard every server function goes through.

/// The signed-in user of the current request, if any (inside a server function or a page
/// render on the server).
pub fn signed_in_user() -> Option<AuthUser> {
    use_context::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<RequestUser>().cloned())
        .and_then(|u| u.0)
}

/// The signed-in user, or 401.
pub fn require_user() -> Result<AuthUser, ServerFnError> {
    signed_in_user().ok_or_else(|| AuthError::Unauthenticated.into_server_fn_error())
}

/// The signed-in user if they have `role` (a superuser has every role), else 401 or 403.
pub fn require_role(role: Role) -> Result<AuthUser, ServerFnError> {
    let user = require_user()?;
    if user.role == Role::Superuser || user.role == role {
        Ok(user)
    } else {
        Err(AuthError::Forbidden.into_server_fn_error())
    }
}

/// The signed-in superuser, or 401 (anonymous) or 403 (member).
pub fn require_superuser() -> Result<AuthUser, ServerFnError> {
    require_role(Role::Superuser)
}

/// The app state inside a server function.
pub fn app_state() -> Result<AppState, ServerFnError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        AuthError::Internal.into_server_fn_error()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_only_same_site_paths() {
        let home = crate::app::HOME_PATH;
        assert_eq!(safe_next(Some("/app/settings/superuser/worker")), "/app/settings/superuser/worker");
        assert_eq!(safe_next(Some("/x?y=1")), "/x?y=1");
        for bad in ["https://evil.example", "//evil.example", "/\\evil.example", "\\\\evil", "/\t/evil.example", "javascript:alert(1)", "", "evil"] {
            assert_eq!(safe_next(Some(bad)), home, "{bad:?}");
        }
        assert_eq!(safe_next(None), home);
    }

    #[test]
    fn client_address_reads_forwarded_for_only_when_trusted() {
        let req = axum::http::Request::builder()
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
            .body(())
            .unwrap();
        let (mut parts, _) = req.into_parts();
        parts.extensions.insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
        assert_eq!(client_address(&parts, false), "10.0.0.1");
        assert_eq!(client_address(&parts, true), "198.51.100.7");
        parts.headers.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(client_address(&parts, true), "10.0.0.1");
    }

    #[test]
    fn sessions_expire_after_30_idle_minutes_or_12_hours_in_all() {
        let t0 = 1_000_000;
        assert!(!session_expired(t0, t0, t0 + 29 * 60));
        assert!(session_expired(t0, t0, t0 + 30 * 60));
        // Active all along (seen a minute ago), but signed in 12 hours ago.
        let twelve_h = 12 * 3600;
        assert!(!session_expired(t0, t0 + twelve_h - 120, t0 + twelve_h - 60));
        assert!(session_expired(t0, t0 + twelve_h - 60, t0 + twelve_h));
    }

    #[test]
    fn login_path_encodes_next() {
        assert_eq!(login_path_for("/app/settings/superuser?a=b&c"), "/login?next=/app/settings/superuser%3Fa%3Db%26c");
    }

    #[test]
    fn waits_grow_after_five_failures_and_are_capped() {
        assert_eq!((0..5).map(wait_after).collect::<Vec<_>>(), vec![0; 5]);
        assert_eq!(wait_after(5), 1);
        assert_eq!(wait_after(6), 2);
        assert_eq!(wait_after(10), 32);
        assert_eq!(wait_after(1000), MAX_WAIT_SECS);
        // Waiting out every step, an account gets far fewer than the hard cap in an hour.
        let (mut t, mut n) = (0, 0);
        while t < 3600 {
            t += wait_after(n);
            n += 1;
        }
        assert!(n < MAX_ACCOUNT_FAILURES_PER_HOUR, "{n}");
        assert!(MAX_ACCOUNT_FAILURES_PER_HOUR + (HASH_RUNNING + HASH_QUEUE) as i64 <= 100);
    }

    #[test]
    fn inputs_are_parsed_once() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in ["", "ada", "@x", "a@", "a b@c", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("twelve chars").is_ok());
        assert!(!format!("{:?}", NewPassword::parse("twelve chars").unwrap()).contains("twelve"));
        assert!(TokenName::parse("worker-1.a_b").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(65)] {
            assert!(TokenName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_checks() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(is_same_site(&h(&[("host", "a.test:3000"), ("origin", "http://a.test:3000")])));
        assert!(!is_same_site(&h(&[("host", "a.test:3000"), ("origin", "https://evil.example")])));
        assert!(!is_same_site(&h(&[("host", "a.test:3000"), ("origin", "null")])));
        assert!(!is_same_site(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_same_site(&h(&[("sec-fetch-site", "same-site")])));
        assert!(is_same_site(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(is_same_site(&h(&[])));
        // Behind a proxy that rewrites Host, the configured public origin decides.
        let proxied = h(&[("host", "127.0.0.1:3000"), ("origin", "https://policy.example.com")]);
        assert!(!is_same_site(&proxied));
        assert!(is_same_site_for(&proxied, Some("https://policy.example.com")));
        assert!(!is_same_site_for(&h(&[("origin", "https://evil.example")]), Some("https://policy.example.com")));
    }
}
