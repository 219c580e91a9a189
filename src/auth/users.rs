//! The people who sign in: email addresses parsed once, and the users table.

use chrono::Utc;
use sqlx::Row;

use super::password::PasswordHash;
use super::types::{AuthUser, Role};
use crate::db::{format_ts, parse_stored, Db};
use crate::error::{taken_or, AppError};

/// A syntactically plausible, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, AppError> {
        let e = normalize_email(raw);
        let bad = |m: &str| AppError::invalid("EMAIL", m);
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

/// A row of `user list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: AuthUser,
    pub disabled: bool,
    pub created_at: String,
}

const USER_COLUMNS: &str = "id, email, role, disabled, created_at";

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<UserRecord, AppError> {
    let role = parse_stored("users.role", &row.try_get::<String, _>("role")?, Role::parse)?;
    Ok(UserRecord {
        user: AuthUser { id: row.try_get("id")?, email: row.try_get("email")?, role },
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn count_users(db: &Db) -> Result<i64, AppError> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&db.pool).await?.try_get("n")?)
}

fn email_taken(email: &Email) -> AppError {
    AppError::invalid("EMAIL", format!("a user {} already exists", email.as_str()))
}

/// Creates a user; a field error naming EMAIL when the address is taken (in any case), also
/// when two creations of the same address race.
pub async fn create_user(db: &Db, email: &Email, role: Role, hash: &PasswordHash) -> Result<AuthUser, AppError> {
    let mut tx = db.begin_write().await?;
    let user = insert_user(&mut tx, email, role, hash).await?;
    tx.commit().await.map_err(taken_or(|| email_taken(email)))?;
    Ok(user)
}

/// Inserts a user inside a write transaction (see [`create_user`]).
pub async fn insert_user(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    email: &Email,
    role: Role,
    hash: &PasswordHash,
) -> Result<AuthUser, AppError> {
    let taken = sqlx::query("SELECT id FROM users WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if taken {
        return Err(email_taken(email));
    }
    let row = sqlx::query(
        "INSERT INTO users (email, password_hash, role, disabled, created_at) VALUES ($1, $2, $3, 0, $4) RETURNING id",
    )
    .bind(email.as_str())
    .bind(hash.as_str())
    .bind(role.as_str())
    .bind(format_ts(Utc::now()))
    .fetch_one(&mut **tx)
    .await
    .map_err(taken_or(|| email_taken(email)))?;
    let id: i64 = row.try_get("id")?;
    Ok(AuthUser { id, email: email.as_str().to_string(), role })
}

/// Disables a user; their sessions stop working at their next request. A field error naming
/// EMAIL when there is no such user.
pub async fn disable_user(db: &Db, email: &Email) -> Result<(), AppError> {
    let done = sqlx::query("UPDATE users SET disabled = 1 WHERE email = $1")
        .bind(email.as_str())
        .execute(&db.pool)
        .await?
        .rows_affected();
    if done == 0 {
        return Err(AppError::invalid("EMAIL", format!("no user {}", email.as_str())));
    }
    Ok(())
}

pub async fn list_users(db: &Db) -> Result<Vec<UserRecord>, AppError> {
    let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email")).fetch_all(&db.pool).await?;
    rows.iter().map(user_from_row).collect()
}

/// The user behind a session, or `None` when they no longer exist or are disabled.
pub async fn active_user(db: &Db, id: i64) -> Result<Option<AuthUser>, AppError> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
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

/// A user and their password hash, for sign-in.
pub async fn user_with_hash(db: &Db, email: &str) -> Result<Option<(UserRecord, PasswordHash)>, AppError> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"))
        .bind(email)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(row) => Ok(Some((user_from_row(&row)?, PasswordHash::stored(row.try_get("password_hash")?)))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_parsed_once() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in ["", "ada", "@x", "a@", "a b@c", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
