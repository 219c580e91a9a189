//! Signing in: credentials checked against the users table, with growing waits after failures
//! per account and per client address, and a dummy hash for unknown accounts.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::password::{Hasher, HASH_QUEUE, HASH_RUNNING, MAX_PASSWORD_BYTES};
use super::types::AuthUser;
use super::users::{normalize_email, user_with_hash};
use crate::db::{format_ts, parse_ts, Db};
use crate::error::AppError;

/// Failures (per account or per client address, within an hour) allowed before waits start.
pub const FREE_FAILURES: i64 = 5;
/// Longest wait between attempts once throttled.
pub const MAX_WAIT_SECS: i64 = 15 * 60;
/// Hard cap on failures per account per hour. The growing waits alone keep an account near
/// twenty failures an hour; the cap leaves room for the attempts that can be in flight at once
/// (the hashing queue) and still stays under 100.
pub const MAX_ACCOUNT_FAILURES_PER_HOUR: i64 = 100 - (HASH_RUNNING + HASH_QUEUE) as i64;

/// Seconds to wait after the latest failure, given the failures in the last hour.
pub fn wait_after(failures: i64) -> i64 {
    if failures < FREE_FAILURES {
        0
    } else {
        let exp = (failures - FREE_FAILURES).min(20) as u32;
        (1i64 << exp).min(MAX_WAIT_SECS)
    }
}

/// Which failures a throttle window counts: those of one account or of one client address.
#[derive(Clone, Copy)]
enum Window {
    Account,
    Client,
}

async fn failure_window(db: &Db, window: Window, key: &str, since: &str) -> Result<(i64, Option<String>), AppError> {
    let sql = match window {
        Window::Account => "SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE account = $1 AND at > $2",
        Window::Client => "SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE client = $1 AND at > $2",
    };
    let row = sqlx::query(sql).bind(key).bind(since).fetch_one(&db.pool).await?;
    Ok((row.try_get("n")?, row.try_get("latest")?))
}

/// 429 when the account or the client address has to wait before trying again.
pub async fn check_throttle(db: &Db, account: &str, client: &str, now: DateTime<Utc>) -> Result<(), AppError> {
    let since = format_ts(now - chrono::Duration::hours(1));
    let mut retry = 0i64;
    for (window, key) in [(Window::Account, account), (Window::Client, client)] {
        let (n, latest) = failure_window(db, window, key, &since).await?;
        let latest = latest.as_deref().and_then(parse_ts);
        if matches!(window, Window::Account) && n >= MAX_ACCOUNT_FAILURES_PER_HOUR {
            retry = retry.max(60 * 60);
        }
        if let Some(latest) = latest {
            let until = latest + chrono::Duration::seconds(wait_after(n));
            retry = retry.max((until - now).num_seconds() + i64::from((until - now).subsec_nanos() > 0));
        }
    }
    if retry > 0 {
        Err(AppError::throttled(retry as u64))
    } else {
        Ok(())
    }
}

pub async fn record_failure(db: &Db, account: &str, client: &str, now: DateTime<Utc>) -> Result<(), AppError> {
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
/// failure that reaches the hash gives the same "Wrong email or password."
pub async fn authenticate(db: &Db, hasher: &Hasher, email: &str, password: &str, client: &str) -> Result<AuthUser, AppError> {
    let account = normalize_email(email);
    // Long enough for any real address; a longer one cannot exist, and is kept short in the table.
    let account: String = account.chars().take(254).collect();
    let now = Utc::now();
    check_throttle(db, &account, client, now).await?;
    let (record, hash) = match user_with_hash(db, &account).await? {
        Some((record, hash)) => (Some(record), Some(hash)),
        None => (None, None),
    };
    let password = if password.len() > MAX_PASSWORD_BYTES { String::new() } else { password.to_string() };
    let ok = hasher.verify(password, hash).await?;
    match record {
        Some(rec) if ok && !rec.disabled => {
            sqlx::query("DELETE FROM sign_in_failures WHERE account = $1").bind(&account).execute(&db.pool).await?;
            Ok(rec.user)
        }
        _ => {
            record_failure(db, &account, client, Utc::now()).await?;
            Err(AppError::invalid_credentials())
        }
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
            .next_back();
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
