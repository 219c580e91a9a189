//! Sessions: the store (in the same database as everything else), the cookie, sign-in and
//! sign-out, and the idle and absolute timeouts.

use std::str::FromStr;
use std::time::Duration;

use axum::Router;
use chrono::Utc;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::types::AuthUser;
use super::users::active_user;
use crate::config::{Backend, DatabaseUrl};
use crate::db::{one_line, Db};
use crate::error::AppError;

/// Idle timeout: a session unused this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Absolute timeout: a session this old is gone, however busy it was.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Name of the session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "rp_session";
/// Its name when it is `Secure`: the `__Host-` prefix makes browsers refuse it unless it was
/// set over HTTPS, for this host only, on path `/`.
pub const SECURE_SESSION_COOKIE: &str = "__Host-rp_session";

const SESSION_KEY: &str = "auth";

/// How sign-in behaves behind the deployment's front (`COOKIE_SECURE`, `PUBLIC_ORIGIN`,
/// `TRUST_PROXY`).
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    /// Marks the session cookie `Secure`.
    pub cookie_secure: bool,
    /// The site's origin as browsers see it, for the same-origin check behind a proxy that
    /// rewrites `Host`.
    pub public_origin: Option<String>,
    /// The client address for throttling comes from `X-Forwarded-For`.
    pub trust_proxy: bool,
}

/// The session store, in the same database as everything else.
#[derive(Clone, Debug)]
pub enum SessionBackend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SessionBackend {
    /// Opens a pool of the concrete type the store needs, beside the app's `AnyPool`, and
    /// creates the store's table.
    pub async fn open(url: &DatabaseUrl) -> Result<SessionBackend, AppError> {
        let err = |e: sqlx::Error| {
            AppError::Unavailable(format!("DATABASE_URL: session store: {}", one_line(&e.to_string())))
        };
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
                    // A SQLite connection cannot go stale (see `Db::connect`).
                    .test_before_acquire(false)
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

    /// Deletes expired sessions every five minutes, for as long as the server runs; a database
    /// error is logged and the next round tries again.
    pub fn spawn_cleanup(&self) {
        use tower_sessions::ExpiredDeletion;
        let period = tokio::time::Duration::from_secs(300);
        let backend = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let done = match &backend {
                    SessionBackend::Sqlite(s) => s.delete_expired().await,
                    SessionBackend::Postgres(s) => s.delete_expired().await,
                };
                if let Err(e) = done {
                    tracing::error!(error = %e, "expired-session cleanup failed; trying again in five minutes");
                }
            }
        });
    }

    /// Wraps `router` in the session layer.
    pub fn layer<S: Clone + Send + Sync + 'static>(&self, router: Router<S>, cookie_secure: bool) -> Router<S> {
        fn configure<St: tower_sessions::SessionStore + Clone>(store: St, secure: bool) -> SessionManagerLayer<St> {
            SessionManagerLayer::new(store)
                .with_name(if secure { SECURE_SESSION_COOKIE } else { SESSION_COOKIE })
                .with_http_only(true)
                .with_same_site(SameSite::Lax)
                .with_secure(secure)
                .with_path("/")
                .with_expiry(Expiry::OnInactivity(CookieDuration::seconds(IDLE_TIMEOUT.as_secs() as i64)))
        }
        match self {
            SessionBackend::Sqlite(s) => router.layer(configure(HashedIds(s.clone()), cookie_secure)),
            SessionBackend::Postgres(s) => router.layer(configure(HashedIds(s.clone()), cookie_secure)),
        }
    }
}

/// A session store that keeps only a hash of each session id, so a copy of the sessions table
/// (a backup, a replica, a leaked dump) holds nothing a browser could present as a cookie.
#[derive(Debug, Clone)]
pub struct HashedIds<S>(pub S);

/// The id under which a session is stored: the first 128 bits of the SHA-256 of its id.
fn stored_id(id: &Id) -> Id {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.0.to_le_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(first))
}

#[async_trait::async_trait]
impl<S: SessionStore> SessionStore for HashedIds<S> {
    async fn create(&self, record: &mut Record) -> tower_sessions::session_store::Result<()> {
        loop {
            let mut stored = record.clone();
            stored.id = stored_id(&record.id);
            let wanted = stored.id;
            self.0.create(&mut stored).await?;
            if stored.id == wanted {
                return Ok(());
            }
            // The store found the hash taken and stored the record under an id of its own, which
            // no cookie can name: remove it and draw another id.
            self.0.delete(&stored.id).await?;
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> tower_sessions::session_store::Result<()> {
        let mut stored = record.clone();
        stored.id = stored_id(&record.id);
        self.0.save(&stored).await
    }

    async fn load(&self, id: &Id) -> tower_sessions::session_store::Result<Option<Record>> {
        Ok(self.0.load(&stored_id(id)).await?.map(|mut r| {
            r.id = *id;
            r
        }))
    }

    async fn delete(&self, id: &Id) -> tower_sessions::session_store::Result<()> {
        self.0.delete(&stored_id(id)).await
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
pub async fn start_session(session: &Session, user: &AuthUser) -> Result<(), AppError> {
    let now = Utc::now().timestamp();
    session.cycle_id().await?;
    session.insert(SESSION_KEY, SessionAuth { user_id: user.id, signed_in_at: now, last_seen: now }).await?;
    Ok(())
}

/// Ends the session: its data is deleted from the store and the cookie removed.
pub async fn end_session(session: &Session) -> Result<(), AppError> {
    Ok(session.flush().await?)
}

/// The user the current request is made by, put into the request's extensions by the
/// user-loading middleware; `None` is anonymous.
#[derive(Debug, Clone, Default)]
pub struct RequestUser(pub Option<AuthUser>);

/// The signed-in user of a session, read from the database on every request (so a disabled
/// user is out at their next request). An expired session, or one whose user is gone or
/// disabled, is ended.
pub async fn session_user(db: &Db, session: &Session) -> Result<Option<AuthUser>, AppError> {
    let Some(mut auth) = session.get::<SessionAuth>(SESSION_KEY).await? else {
        return Ok(None);
    };
    let now = Utc::now().timestamp();
    let expired = session_expired(auth.signed_in_at, auth.last_seen, now);
    let user = if expired { None } else { active_user(db, auth.user_id).await? };
    match user {
        None => {
            end_session(session).await?;
            Ok(None)
        }
        Some(user) => {
            // Writing the session pushes its idle expiry forward; once a minute is enough.
            if now - auth.last_seen >= 60 {
                auth.last_seen = now;
                session.insert(SESSION_KEY, auth).await?;
            }
            Ok(Some(user))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_ids_are_a_one_way_function_of_the_cookie() {
        let id = Id(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(stored_id(&id), stored_id(&id));
        assert_ne!(stored_id(&id), id);
        assert_ne!(stored_id(&id), stored_id(&Id(id.0 + 1)));
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
}
