//! Personal API tokens: a superuser's bearer credential for `/api/v1/policy`, acting on their
//! behalf with the scopes it was given. Stored only as their SHA-256. A token works only while
//! it is not revoked, not expired, and its owner is an active superuser: a disabled owner's
//! token is refused at its next request.

use axum::http::HeaderMap;
use chrono::{Duration, Utc};
use rand::RngCore;
use sqlx::Row;

use super::token::{bearer_token, TokenName};
use super::types::{AuthUser, Role};
use super::users::active_user;
use crate::db::{format_ts, parse_ts, sha256_hex, Db};
use crate::error::{taken_or, AppError};

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiScope {
    /// Read the policy, its keys and revisions.
    PolicyRead,
    /// Change keys (as its owner would on the page: reviewed keys open a change request).
    PolicyWrite,
    /// Read the audit log.
    AuditRead,
}

impl ApiScope {
    pub const ALL: [ApiScope; 3] = [ApiScope::PolicyRead, ApiScope::PolicyWrite, ApiScope::AuditRead];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::PolicyRead => "policy:read",
            ApiScope::PolicyWrite => "policy:write",
            ApiScope::AuditRead => "audit:read",
        }
    }

    pub fn parse(s: &str) -> Option<ApiScope> {
        ApiScope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Scopes named on the command line; none: read-only (`policy:read audit:read`).
    pub fn parse_list(raw: &[String]) -> Result<Vec<ApiScope>, AppError> {
        let mut out = Vec::new();
        for r in raw {
            let s = ApiScope::parse(r.trim()).ok_or_else(|| {
                AppError::invalid("--scope", format!("must be policy:read, policy:write or audit:read, got \"{r}\""))
            })?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        if out.is_empty() {
            out = vec![ApiScope::PolicyRead, ApiScope::AuditRead];
        }
        // Writing needs reading: a writer checks versions it has read.
        if out.contains(&ApiScope::PolicyWrite) && !out.contains(&ApiScope::PolicyRead) {
            out.push(ApiScope::PolicyRead);
        }
        out.sort();
        Ok(out)
    }

    fn stored(scopes: &[ApiScope]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// The caller of an API request: a live token and its owner, or a signed-in superuser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    pub user: AuthUser,
    /// The token's name; `None` for a session.
    pub token: Option<String>,
    pub scopes: Vec<ApiScope>,
}

impl ApiCaller {
    /// A signed-in superuser: every scope.
    pub fn session(user: AuthUser) -> ApiCaller {
        ApiCaller { user, token: None, scopes: ApiScope::ALL.to_vec() }
    }

    /// 403 unless the caller has `scope`.
    pub fn require(&self, scope: ApiScope) -> Result<(), AppError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("this token lacks the scope {}", scope.as_str())))
        }
    }

    /// Who a change is audited as: the user, or `token:<name> (<owner>)` with the owner's id.
    pub fn actor_name(&self) -> String {
        match &self.token {
            Some(name) => format!("token:{name} ({})", self.user.email),
            None => self.user.email.clone(),
        }
    }
}

/// A row of `api-token list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub name: String,
    pub owner: String,
    pub scopes: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Creates a token for superuser `owner` and returns it (shown once; only its SHA-256 is
/// kept). `expires_in_days`: none for a token that does not expire.
pub async fn create_api_token(
    db: &Db,
    name: &TokenName,
    owner: &AuthUser,
    scopes: &[ApiScope],
    expires_in_days: Option<i64>,
) -> Result<String, AppError> {
    if owner.role != Role::Superuser {
        return Err(AppError::invalid(
            "--user",
            format!("{} is not a superuser: API tokens are theirs only", owner.email),
        ));
    }
    if let Some(d) = expires_in_days.filter(|d| !(1..=3650).contains(d)) {
        return Err(AppError::invalid("--expires-in-days", format!("must be 1 to 3650 days, got {d}")));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("rpa_{}", hex::encode(bytes));
    let now = Utc::now();
    let taken = || AppError::invalid("NAME", format!("an API token named {} already exists", name.as_str()));
    sqlx::query(
        "INSERT INTO api_tokens (name, owner_id, token_hash, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name.as_str())
    .bind(owner.id)
    .bind(sha256_hex(&token))
    .bind(ApiScope::stored(scopes))
    .bind(format_ts(now))
    .bind(expires_in_days.map(|d| format_ts(now + Duration::days(d))))
    .execute(&db.pool)
    .await
    .map_err(taken_or(taken))?;
    tracing::warn!(target: "security", token = name.as_str(), owner = %owner.email, scopes = ApiScope::stored(scopes), "API token created");
    Ok(token)
}

/// Revokes a live token at once.
pub async fn revoke_api_token(db: &Db, name: &TokenName) -> Result<(), AppError> {
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
        .bind(format_ts(Utc::now()))
        .bind(name.as_str())
        .execute(&db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::invalid("NAME", format!("no live API token named {}", name.as_str())));
    }
    tracing::warn!(target: "security", token = name.as_str(), "API token revoked");
    Ok(())
}

pub async fn list_api_tokens(db: &Db) -> Result<Vec<ApiTokenRecord>, AppError> {
    let rows = sqlx::query(
        "SELECT t.name, u.email, t.scopes, t.created_at, t.expires_at, t.last_used_at, t.revoked_at
         FROM api_tokens t JOIN users u ON u.id = t.owner_id ORDER BY t.name",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ApiTokenRecord {
                name: r.try_get("name")?,
                owner: r.try_get("email")?,
                scopes: r.try_get("scopes")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// The answer to an API call without a live credential.
pub const API_TOKEN_REQUIRED: &str =
    "a live API token (Authorization: Bearer rpa_…) or a superuser's session is required";

/// Checks `Authorization: Bearer <token>` against the live API tokens: 401 when it is missing,
/// unknown, revoked or expired, or its owner is disabled or no longer a superuser. Notes when
/// it was last used (at most once a minute, so reads stay reads).
pub async fn verify_api_token(db: &Db, headers: &HeaderMap) -> Result<ApiCaller, AppError> {
    let refused = || AppError::Unauthenticated(API_TOKEN_REQUIRED.into());
    let token = bearer_token(headers).ok_or_else(refused)?;
    let row = sqlx::query(
        "SELECT id, name, owner_id, scopes, expires_at, last_used_at FROM api_tokens
         WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(sha256_hex(token))
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(refused)?;
    let now = Utc::now();
    let expires: Option<String> = row.try_get("expires_at")?;
    if expires.as_deref().and_then(parse_ts).is_some_and(|e| e <= now) {
        return Err(AppError::Unauthenticated("this API token has expired".into()));
    }
    let owner = active_user(db, row.try_get("owner_id")?).await?;
    let Some(owner) = owner.filter(|u| u.role == Role::Superuser) else {
        return Err(AppError::Unauthenticated("this API token's owner is disabled or no longer a superuser".into()));
    };
    let last: Option<String> = row.try_get("last_used_at")?;
    if last.as_deref().and_then(parse_ts).is_none_or(|l| now - l > Duration::seconds(60)) {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(format_ts(now))
            .bind(row.try_get::<i64, _>("id")?)
            .execute(&db.pool)
            .await?;
    }
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiCaller {
        user: owner,
        token: Some(row.try_get("name")?),
        scopes: scopes.split_whitespace().filter_map(ApiScope::parse).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_default_to_read_only_and_writing_implies_reading() {
        assert_eq!(ApiScope::parse_list(&[]).unwrap(), vec![ApiScope::PolicyRead, ApiScope::AuditRead]);
        assert_eq!(
            ApiScope::parse_list(&["policy:write".into()]).unwrap(),
            vec![ApiScope::PolicyRead, ApiScope::PolicyWrite]
        );
        assert!(ApiScope::parse_list(&["policy:delete".into()]).unwrap_err().to_string().starts_with("--scope"));
        let c = ApiCaller {
            user: AuthUser { id: 1, email: "a@example.com".into(), role: Role::Superuser },
            token: Some("ci".into()),
            scopes: vec![ApiScope::PolicyRead],
        };
        assert_eq!(c.require(ApiScope::PolicyWrite).unwrap_err().status_code(), 403);
        assert_eq!(c.actor_name(), "token:ci (a@example.com)");
    }
}
