//! The database handle shared by every feature: one `sqlx::AnyPool` over SQLite or PostgreSQL.
//!
//! Queries are written once with `$1`-style placeholders, which both backends accept. Timestamps
//! are stored as fixed-width UTC text (see [`format_ts`]) so that they sort and compare the same
//! way on both backends.

use std::os::unix::fs::DirBuilderExt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;
use sqlx::{Any, Executor, Transaction};

use crate::config::{Backend, DatabaseUrl};
use crate::error::AppError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// What the app counts for `/metrics` (`metrics.rs`): every holder of the database can count.
    pub metrics: crate::metrics::Metrics,
}

impl Db {
    /// Connects without migrating.
    pub async fn connect(url: &DatabaseUrl) -> Result<Db, AppError> {
        sqlx::any::install_default_drivers();
        if let Some(path) = &url.sqlite_path {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                // The folder holds the policy, the audit log, users and sessions: owner only.
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| {
                    AppError::Config(format!("DATABASE_URL: cannot create folder {}: {e}", dir.display()))
                })?;
            }
        }
        let backend = url.backend;
        let mut options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            // A pooled SQLite connection is a file handle that cannot go stale; checking it
            // before each use would cost a round trip to its worker thread per query.
            // PostgreSQL connections are checked: the server may have closed them.
            .test_before_acquire(backend != Backend::Sqlite);
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; the busy timeout makes a writer
                    // wait for the lock instead of failing at once; foreign keys are off by default.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url.as_str()).await.map_err(|e| {
            AppError::Unavailable(format!("DATABASE_URL: cannot connect: {}", one_line(&e.to_string())))
        })?;
        if let Some(path) = &url.sqlite_path {
            owner_only(path);
        }
        Ok(Db { pool, backend, metrics: Default::default() })
    }

    /// Connects and brings the schema up to date.
    pub async fn open(url: &DatabaseUrl) -> Result<Db, AppError> {
        let db = Db::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// The migrations this build carries for the backend.
    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    pub async fn migrate(&self) -> Result<(), AppError> {
        self.migrator()
            .run(&self.pool)
            .await
            .map_err(|e| AppError::Internal(format!("migration failed: {}", one_line(&e.to_string()))))
    }

    /// The database's clock, so that instances on hosts whose clocks differ agree on when a
    /// lease ends.
    pub async fn now(&self) -> Result<DateTime<Utc>, AppError> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS now",
            Backend::Postgres => "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS now",
        };
        let text: String = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
        parse_ts(&text).ok_or_else(|| AppError::Internal(format!("the database clock reads \"{text}\"")))
    }

    /// True when every migration this build carries is applied (another instance may have
    /// applied newer ones).
    pub async fn migrations_applied(&self) -> Result<bool, AppError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&self.pool).await?;
        Ok(self.migrator().iter().all(|m| applied.contains(&m.version)))
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Starts a transaction that is going to write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of one failing
    /// when it upgrades from reading to writing.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// Makes the SQLite file and its journal files readable by their owner only.
fn owner_only(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let name = path.as_os_str().to_string_lossy();
    for file in [name.to_string(), format!("{name}-wal"), format!("{name}-shm")] {
        if let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file, error = %e, "cannot make the database file private");
            }
        }
    }
}

/// One line of text: line breaks and runs of spaces become one space (database messages
/// span several lines).
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The stored form of a timestamp: RFC 3339 in UTC with microseconds, fixed width, so that
/// text order is time order on both backends.
pub fn format_ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A stored name (a role, a status, an action) read back into its type; a name this release
/// does not know is logged and answered as an internal error.
pub fn parse_stored<T>(column: &str, raw: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, AppError> {
    parse(raw).ok_or_else(|| {
        tracing::error!(column, value = raw, "a stored value this release does not know");
        AppError::internal()
    })
}

/// SHA-256 of `text`, as 64 lower-case hex digits (token hashes, snapshot hashes).
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_a_fixed_width_and_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.5Z").unwrap().with_timezone(&Utc);
        let s = format_ts(at);
        assert_eq!(s, "2026-01-02T03:04:05.500000Z");
        assert_eq!(parse_ts(&s), Some(at));
    }
}
