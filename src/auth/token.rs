//! Worker tokens: bearer credentials for the worker API, stored only as their SHA-256.

use axum::http::{header, HeaderMap};
use chrono::Utc;
use rand::RngCore;
use sqlx::Row;

use crate::db::{format_ts, sha256_hex, Db};
use crate::error::{taken_or, AppError};

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

/// What a worker token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Create runs (`POST /api/v1/runs`).
    RunsCreate,
    /// Claim, complete and fail blocks.
    RunsWork,
    /// Read a run's policy snapshot.
    SnapshotRead,
    /// Read today's effective baseline (`GET /api/v1/policy`), for a service that enforces it;
    /// never write. Not part of the default grant.
    PolicyRead,
}

impl Scope {
    /// Every scope a token may be given.
    pub const ALL: [Scope; 4] = [Scope::RunsCreate, Scope::RunsWork, Scope::SnapshotRead, Scope::PolicyRead];
    /// What a token gets without `--scope`: everything a worker does.
    pub const WORKER: [Scope; 3] = [Scope::RunsCreate, Scope::RunsWork, Scope::SnapshotRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RunsCreate => "runs:create",
            Scope::RunsWork => "runs:work",
            Scope::SnapshotRead => "snapshot:read",
            Scope::PolicyRead => "policy:read",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What a token is granted: its scopes, and the one run it is bound to (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scopes: Vec<Scope>,
    pub run_id: Option<i64>,
}

impl Grant {
    /// Everything a worker does, on any run: what tokens made before scopes keep.
    pub fn all() -> Grant {
        Grant { scopes: Scope::WORKER.to_vec(), run_id: None }
    }

    /// Scopes named on the command line (none: all of them), and an optional run.
    pub fn parse(scopes: &[String], run_id: Option<i64>) -> Result<Grant, AppError> {
        let mut out = Vec::new();
        for raw in scopes {
            let s = Scope::parse(raw.trim()).ok_or_else(|| {
                AppError::invalid(
                    "--scope",
                    format!("must be runs:create, runs:work, snapshot:read or policy:read, got \"{raw}\""),
                )
            })?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        if out.is_empty() {
            out = Scope::WORKER.to_vec();
        }
        out.sort();
        if let Some(id) = run_id.filter(|id| *id <= 0) {
            return Err(AppError::invalid("--run", format!("must be a positive run id, got {id}")));
        }
        if run_id.is_some() && out.contains(&Scope::RunsCreate) {
            return Err(AppError::invalid(
                "--run",
                "a token bound to one run cannot create runs; leave out --scope runs:create",
            ));
        }
        Ok(Grant { scopes: out, run_id })
    }

    /// The scopes as stored: space-separated.
    fn stored(&self) -> String {
        self.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }

    fn from_stored(scopes: &str, run_id: Option<i64>) -> Grant {
        Grant { scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(), run_id }
    }

    /// What `token list` shows: `runs:work snapshot:read` and `run 12` when bound.
    pub fn describe(&self) -> String {
        match self.run_id {
            Some(id) => format!("{} (run {id})", self.stored()),
            None => self.stored(),
        }
    }
}

/// A worker token that passed [`verify_worker_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerToken {
    pub id: i64,
    pub name: String,
    pub grant: Grant,
}

impl WorkerToken {
    /// 403 unless the token has `scope`, and (for a token bound to a run) `run` is its run.
    pub fn require(&self, scope: Scope, run: Option<i64>) -> Result<(), AppError> {
        if !self.grant.scopes.contains(&scope) {
            return Err(AppError::Forbidden(format!("this token lacks the scope {}", scope.as_str())));
        }
        match (self.grant.run_id, run) {
            (Some(bound), Some(asked)) if bound != asked => {
                Err(AppError::Forbidden(format!("this token is bound to run {bound}")))
            }
            (Some(bound), None) => Err(AppError::Forbidden(format!("this token is bound to run {bound}"))),
            _ => Ok(()),
        }
    }
}

/// A row of `token list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub grant: Grant,
}

fn name_taken(name: &TokenName) -> AppError {
    AppError::invalid("NAME", format!("a token named {} already exists", name.as_str()))
}

/// Creates a token and returns it; only its SHA-256 is stored, so this is the only time it
/// can be seen. A field error naming NAME when the name is taken, also when two creations of
/// the same name race.
pub async fn create_token(db: &Db, name: &TokenName, grant: &Grant) -> Result<String, AppError> {
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
    sqlx::query("INSERT INTO worker_tokens (name, token_hash, created_at, scopes, run_id) VALUES ($1, $2, $3, $4, $5)")
        .bind(name.as_str())
        .bind(sha256_hex(&token))
        .bind(format_ts(Utc::now()))
        .bind(grant.stored())
        .bind(grant.run_id)
        .execute(&mut *tx)
        .await
        .map_err(taken_or(|| name_taken(name)))?;
    tx.commit().await.map_err(taken_or(|| name_taken(name)))?;
    // The name and scopes only: the token itself is shown once, to its creator.
    tracing::warn!(target: "security", token = name.as_str(), scopes = grant.stored(), run = grant.run_id, "worker token created");
    Ok(token)
}

/// Revokes a token at once, and ends its claims in the same transaction: its blocks are
/// claimable again (the attempt stays counted; one that was the last allowed is failed at the
/// next claim). A field error naming NAME when there is no live token by that name.
pub async fn revoke_token(db: &Db, name: &TokenName) -> Result<(), AppError> {
    let mut tx = db.begin_write().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE worker_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING id",
    )
    .bind(format_ts(Utc::now()))
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Err(AppError::invalid("NAME", format!("no live token named {}", name.as_str())));
    };
    let released = sqlx::query(
        "UPDATE blocks SET state = 'pending', claimed_by = NULL, claimed_by_token = NULL, lease_expires_at = NULL
         WHERE claimed_by_token = $1 AND state = 'claimed'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    tracing::warn!(target: "security", token = name.as_str(), released, "worker token revoked");
    Ok(())
}

pub async fn list_tokens(db: &Db) -> Result<Vec<TokenRecord>, AppError> {
    let rows = sqlx::query("SELECT name, created_at, revoked_at, scopes, run_id FROM worker_tokens ORDER BY name")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenRecord {
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
                grant: Grant::from_stored(&r.try_get::<String, _>("scopes")?, r.try_get("run_id")?),
            })
        })
        .collect()
}

/// The token of an `Authorization: Bearer <token>` header (trimmed, 1 to 256 bytes).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

/// Checks `Authorization: Bearer <token>` against the live worker tokens: 401 when it is
/// missing, malformed, unknown or revoked.
pub async fn verify_worker_token(db: &Db, headers: &HeaderMap) -> Result<WorkerToken, AppError> {
    let refused = || AppError::Unauthenticated(TOKEN_REQUIRED.into());
    let token = bearer_token(headers).ok_or_else(refused)?;
    let row =
        sqlx::query("SELECT id, name, scopes, run_id FROM worker_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(sha256_hex(token))
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(refused)?;
    Ok(WorkerToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        grant: Grant::from_stored(&row.try_get::<String, _>("scopes")?, row.try_get("run_id")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_parsed_from_the_command_line() {
        assert_eq!(Grant::parse(&[], None).unwrap(), Grant::all());
        let g = Grant::parse(&["snapshot:read".into(), "runs:work".into(), "runs:work".into()], Some(4)).unwrap();
        assert_eq!((g.describe().as_str(), g.run_id), ("runs:work snapshot:read (run 4)", Some(4)));
        assert_eq!(Grant::from_stored(&g.stored(), Some(4)), g);
        assert!(Grant::parse(&["runs:delete".into()], None).unwrap_err().to_string().starts_with("--scope:"));
        assert!(Grant::parse(&["runs:create".into()], Some(4)).is_err());
        assert!(Grant::parse(&["runs:work".into()], Some(0)).is_err());
        let t = WorkerToken { id: 1, name: "w".into(), grant: g };
        assert!(t.require(Scope::RunsWork, Some(4)).is_ok());
        assert_eq!(t.require(Scope::RunsWork, Some(5)).unwrap_err().status_code(), 403);
        assert_eq!(
            t.require(Scope::RunsCreate, None).unwrap_err().to_string(),
            "this token lacks the scope runs:create"
        );
    }

    #[test]
    fn token_names_are_parsed_once() {
        assert!(TokenName::parse("worker-1.a_b").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(65)] {
            assert!(TokenName::parse(bad).is_err(), "{bad}");
        }
    }
}
