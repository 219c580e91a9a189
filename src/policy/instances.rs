//! The server processes sharing one database, and whether they agree on the env layer. Each
//! instance records the fingerprint of its `POLICY__…` variables at start and refreshes it every
//! minute; when live instances hold different fingerprints, the same key can resolve to
//! different values depending on which instance answers, and the settings page and the log say
//! so.

use chrono::Utc;
use rand::RngCore;
use sqlx::Row;

use super::store::PolicyStore;
use crate::db::{format_ts, sha256_hex};
use crate::error::AppError;

/// How long an instance stays live without refreshing its row.
const LIVE_FOR: chrono::Duration = chrono::Duration::minutes(3);

/// The fingerprint of an env layer: SHA-256 of its `key=value` lines, sorted.
pub fn env_fingerprint(store: &PolicyStore) -> String {
    let mut lines: Vec<String> = store.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
    lines.sort();
    sha256_hex(&lines.join("\n"))
}

/// This process, as recorded in the `instances` table.
#[derive(Clone, Debug)]
pub struct Instance {
    pub id: String,
    pub fingerprint: String,
}

impl Instance {
    /// Records this process and its env fingerprint; forgets instances long gone.
    pub async fn register(store: &PolicyStore) -> Result<Instance, AppError> {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let me = Instance { id: hex::encode(bytes), fingerprint: env_fingerprint(store) };
        let now = Utc::now();
        sqlx::query("DELETE FROM instances WHERE seen_at < $1")
            .bind(format_ts(now - LIVE_FOR * 10))
            .execute(&store.db.pool)
            .await?;
        sqlx::query("INSERT INTO instances (id, env_fingerprint, started_at, seen_at) VALUES ($1, $2, $3, $3)")
            .bind(&me.id)
            .bind(&me.fingerprint)
            .bind(format_ts(now))
            .execute(&store.db.pool)
            .await?;
        Ok(me)
    }

    /// Marks this instance as still running.
    pub async fn refresh(&self, store: &PolicyStore) -> Result<(), AppError> {
        sqlx::query("UPDATE instances SET seen_at = $1 WHERE id = $2")
            .bind(format_ts(Utc::now()))
            .bind(&self.id)
            .execute(&store.db.pool)
            .await?;
        Ok(())
    }

    /// Removes this instance's row (at a clean stop).
    pub async fn leave(&self, store: &PolicyStore) -> Result<(), AppError> {
        sqlx::query("DELETE FROM instances WHERE id = $1").bind(&self.id).execute(&store.db.pool).await?;
        Ok(())
    }
}

/// The latest answer of [`env_disagreement`], kept by the instance's heartbeat so that a page
/// reads it without a query.
#[derive(Clone, Debug, Default)]
pub struct EnvWarning(std::sync::Arc<std::sync::RwLock<Option<String>>>);

impl EnvWarning {
    pub fn get(&self) -> Option<String> {
        self.0.read().ok().and_then(|w| w.clone())
    }

    pub fn set(&self, warning: Option<String>) {
        if let Ok(mut w) = self.0.write() {
            *w = warning;
        }
    }
}

/// A sentence saying that the live instances run with different env layers, or `None` when
/// they agree (or only one runs).
pub async fn env_disagreement(store: &PolicyStore) -> Result<Option<String>, AppError> {
    let rows = sqlx::query("SELECT DISTINCT env_fingerprint FROM instances WHERE seen_at >= $1")
        .bind(format_ts(Utc::now() - LIVE_FOR))
        .fetch_all(&store.db.pool)
        .await?;
    if rows.len() <= 1 {
        return Ok(None);
    }
    let mine = env_fingerprint(store);
    let others =
        rows.iter().filter_map(|r| r.try_get::<String, _>("env_fingerprint").ok()).filter(|f| *f != mine).count();
    Ok(Some(format!(
        "The server instances sharing this database were started with different POLICY__ variables ({} env layers in use); a key set in the environment may resolve differently depending on the instance that answers. Start every instance with the same POLICY__ variables.",
        others + 1
    )))
}
