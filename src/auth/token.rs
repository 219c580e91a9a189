//! Worker tokens: bearer credentials for the worker API, stored only as their SHA-256.

use axum::http::{header, HeaderMap};
use chrono::Utc;
use rand::RngCore;
use sqlx::Row;

use crate::db::{format_ts, sha256_hex, Db};
use crate::error::{is_unique_violation, AppError};

/// The answer to a worker API call without a live token.
pub const TOKEN_REQUIRED: &str = "a live worker token is required: Authorization: Bearer <token>";

/// A worker token's name: 1 to 64 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    pub fn parse(raw: &str) -> Result<TokenName, AppError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(TokenName(raw.to_string()))
        } else {
            Err(AppError::invalid("NAME", "must be 1 to 64 letters, digits, '.', '_' or '-'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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

fn name_taken(name: &TokenName) -> AppError {
    AppError::invalid("NAME", format!("a token named {} already exists", name.as_str()))
}

/// Creates a token and returns it; only its SHA-256 is stored, so this is the only time it
/// can be seen. A field error naming NAME when the name is taken, also when two creations of
/// the same name race.
pub async fn create_token(db: &Db, name: &TokenName) -> Result<String, AppError> {
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
        return Err(name_taken(name));
    }
    sqlx::query("INSERT INTO worker_tokens (name, token_hash, created_at) VALUES ($1, $2, $3)")
        .bind(name.as_str())
        .bind(sha256_hex(&token))
        .bind(format_ts(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { name_taken(name) } else { e.into() })?;
    tx.commit().await.map_err(|e| if is_unique_violation(&e) { name_taken(name) } else { e.into() })?;
    Ok(token)
}

/// Revokes a token at once. A field error naming NAME when there is no live token by that name.
pub async fn revoke_token(db: &Db, name: &TokenName) -> Result<(), AppError> {
    let done = sqlx::query("UPDATE worker_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
        .bind(format_ts(Utc::now()))
        .bind(name.as_str())
        .execute(&db.pool)
        .await?
        .rows_affected();
    if done == 0 {
        return Err(AppError::invalid("NAME", format!("no live token named {}", name.as_str())));
    }
    Ok(())
}

pub async fn list_tokens(db: &Db) -> Result<Vec<TokenRecord>, AppError> {
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

/// Checks `Authorization: Bearer <token>` against the live worker tokens: 401 when it is
/// missing, malformed, unknown or revoked.
pub async fn verify_worker_token(db: &Db, headers: &HeaderMap) -> Result<WorkerToken, AppError> {
    let refused = || AppError::Unauthenticated(TOKEN_REQUIRED.into());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(refused)?;
    let row = sqlx::query("SELECT id, name FROM worker_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(sha256_hex(token))
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(refused)?;
    Ok(WorkerToken { id: row.try_get("id")?, name: row.try_get("name")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_are_parsed_once() {
        assert!(TokenName::parse("worker-1.a_b").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(65)] {
            assert!(TokenName::parse(bad).is_err(), "{bad}");
        }
    }
}
