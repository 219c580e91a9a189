//! First run in the browser: while no superuser exists, the server prints a one-time setup
//! address (`/setup?token=…`) at start; opening it creates the first superuser. The token lives
//! only in this process's memory, as its SHA-256; it is good for one use and only while no
//! superuser exists, which is checked again in the transaction that creates one.

use std::sync::{Arc, Mutex};

use super::password::{Hasher, NewPassword};
use super::types::{AuthUser, Role, SetupStatus};
use super::users::{insert_user, Email};
use crate::config::Backend;
use crate::db::{sha256_hex, Db};
use crate::error::AppError;

/// The setup token of this server process, kept as its SHA-256 (`None` once used or never
/// issued).
#[derive(Clone, Default)]
pub struct SetupToken(Arc<Mutex<Option<String>>>);

impl std::fmt::Debug for SetupToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupToken(…)")
    }
}

impl SetupToken {
    /// A new random token, replacing any earlier one; the caller shows it once.
    pub fn issue(&self) -> String {
        let token = hex::encode(rand::random::<[u8; 24]>());
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some(sha256_hex(&token));
        }
        token
    }

    fn matches(&self, token: &str) -> bool {
        let offered = sha256_hex(token);
        self.0.lock().ok().and_then(|k| k.clone()).is_some_and(|kept| same_text(&kept, &offered))
    }

    /// Uses the token up: true for the one caller that presented it while it was good.
    fn take(&self, token: &str) -> bool {
        let offered = sha256_hex(token);
        let Ok(mut kept) = self.0.lock() else { return false };
        if kept.as_deref().is_some_and(|k| same_text(k, &offered)) {
            *kept = None;
            true
        } else {
            false
        }
    }

    /// Gives a taken token back after a failure that created no one (a bad field, a lost
    /// database connection), so the person can correct it and send the form again.
    fn give_back(&self, token: &str) {
        if let Ok(mut kept) = self.0.lock() {
            if kept.is_none() {
                *kept = Some(sha256_hex(token));
            }
        }
    }

    /// Forgets the token (a superuser exists).
    pub fn revoke(&self) {
        if let Ok(mut kept) = self.0.lock() {
            *kept = None;
        }
    }
}

/// Compares two hex digests in time that does not depend on where they differ.
fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn superuser_exists(db: &Db) -> Result<bool, AppError> {
    superuser_in(&db.pool).await
}

/// Whether a superuser exists, read through `e` (the pool, or a transaction).
async fn superuser_in<'e>(e: impl sqlx::Executor<'e, Database = sqlx::Any>) -> Result<bool, AppError> {
    Ok(sqlx::query("SELECT id FROM users WHERE role = 'superuser' LIMIT 1").fetch_optional(e).await?.is_some())
}

/// What the setup page at `token` shows.
pub async fn setup_state(db: &Db, setup: &SetupToken, token: &str) -> Result<SetupStatus, AppError> {
    if superuser_exists(db).await? {
        setup.revoke();
        return Ok(SetupStatus::Done);
    }
    Ok(if setup.matches(token) { SetupStatus::Open } else { SetupStatus::WrongToken })
}

fn refused() -> AppError {
    AppError::Forbidden(
        "This setup address is not valid: it was used already, or it is not the one the server printed at start."
            .into(),
    )
}

fn done() -> AppError {
    AppError::Forbidden("A superuser exists already: sign in instead.".into())
}

/// Creates the first superuser with the printed token: the password twice, with the same rules
/// as the CLI. Refused (and nothing written) with another token, after the token was used, or
/// once any superuser exists, also when two instances race.
pub async fn create_first_superuser(
    db: &Db,
    hasher: &Hasher,
    setup: &SetupToken,
    token: &str,
    email: &str,
    password: &str,
    password_again: &str,
) -> Result<AuthUser, AppError> {
    if superuser_exists(db).await? {
        setup.revoke();
        return Err(done());
    }
    if !setup.matches(token) {
        return Err(refused());
    }
    let email = Email::parse(email)?;
    if password != password_again {
        return Err(AppError::invalid("password_again", "the two passwords differ"));
    }
    let password = NewPassword::parse(password)?;
    let hash = hasher.hash(password).await?;
    // One use: whoever takes the token first goes on; a second form sent at once is refused.
    if !setup.take(token) {
        return Err(refused());
    }
    match insert_first(db, &email, &hash).await {
        Ok(user) => {
            tracing::warn!(target: "security", user = user.email, "first superuser created from the setup page");
            Ok(user)
        }
        Err(e) => {
            if !matches!(superuser_exists(db).await, Ok(true)) {
                setup.give_back(token);
            }
            Err(e)
        }
    }
}

async fn insert_first(db: &Db, email: &Email, hash: &super::password::PasswordHash) -> Result<AuthUser, AppError> {
    let mut tx = db.begin_write().await?;
    // SQLite's BEGIN IMMEDIATE already holds the write lock; on PostgreSQL this lock makes a
    // second instance's creation wait, then see the first superuser.
    if db.backend == Backend::Postgres {
        sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    }
    if superuser_in(&mut *tx).await? {
        return Err(done());
    }
    let user = insert_user(&mut tx, email, Role::Superuser, hash).await?;
    tx.commit().await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_once_and_only_itself() {
        let setup = SetupToken::default();
        assert!(!setup.matches(""), "no token before one is issued");
        let token = setup.issue();
        assert_eq!(token.len(), 48);
        assert!(setup.matches(&token));
        assert!(!setup.matches(&token[1..]));
        assert!(!setup.take("wrong"));
        assert!(setup.take(&token));
        assert!(!setup.take(&token), "one use");
        setup.give_back(&token);
        assert!(setup.matches(&token));
        setup.revoke();
        assert!(!setup.matches(&token));
        assert!(format!("{setup:?}").contains('…'));
    }
}
