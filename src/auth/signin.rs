//! Signing in: credentials checked against the users table, with growing waits after failures
//! per account and per client address, and a dummy hash for unknown accounts.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::password::{Hasher, HASH_QUEUE, HASH_RUNNING, MAX_PASSWORD_BYTES};
use super::types::AuthUser;
use super::users::{normalize_email, user_with_hash};
use crate::config::Backend;
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

/// Which failures a throttle window counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Window {
    /// This account from this client: the owner's own mistakes, or a guesser's.
    AccountFromClient,
    /// This client, whatever the account: one address trying many accounts.
    Client,
    /// This account, from any client: many addresses guessing one account. It only holds back
    /// clients that have failed for the account themselves, so it never locks out the owner.
    Account,
}

async fn failure_window(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    window: Window,
    account: &str,
    client: &str,
    since: &str,
) -> Result<(i64, Option<String>), AppError> {
    let q = match window {
        Window::AccountFromClient => sqlx::query(
            "SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE account = $1 AND client = $2 AND at > $3",
        )
        .bind(account)
        .bind(client),
        Window::Client => sqlx::query("SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE client = $1 AND at > $2")
            .bind(client),
        Window::Account => sqlx::query("SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE account = $1 AND at > $2")
            .bind(account),
    };
    let row = q.bind(since).fetch_one(&mut **tx).await?;
    Ok((row.try_get("n")?, row.try_get("latest")?))
}

/// Seconds `client` must wait before trying `account` again (0: it may try now).
async fn wait_for(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    account: &str,
    client: &str,
    now: DateTime<Utc>,
) -> Result<i64, AppError> {
    let since = format_ts(now - chrono::Duration::hours(1));
    let mut retry = 0i64;
    let mut own_failures = 0;
    for window in [Window::AccountFromClient, Window::Client, Window::Account] {
        if window == Window::Account && own_failures == 0 {
            continue;
        }
        let (n, latest) = failure_window(tx, window, account, client, &since).await?;
        if window == Window::AccountFromClient {
            own_failures = n;
        }
        if window == Window::Account && n >= MAX_ACCOUNT_FAILURES_PER_HOUR {
            retry = retry.max(60 * 60);
        }
        let wait = wait_after(n);
        if let Some(latest) = latest.as_deref().and_then(parse_ts).filter(|_| wait > 0) {
            let until = latest + chrono::Duration::seconds(wait);
            retry = retry.max((until - now).num_seconds() + i64::from((until - now).subsec_nanos() > 0));
        }
    }
    Ok(retry)
}

/// Checks whether `client` may try `account` now and, in the same transaction, records the
/// attempt as a failure (a success removes it again), so that attempts made at once all count.
/// 429 when it has to wait. Returns the time the attempt was recorded at.
pub async fn begin_attempt(db: &Db, account: &str, client: &str) -> Result<DateTime<Utc>, AppError> {
    let mut tx = db.begin_write().await?;
    if db.backend == Backend::Postgres {
        // One client's attempts queue here; SQLite's write lock does the same.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(client).execute(&mut *tx).await?;
    }
    // Read once the lock is held: an attempt that queued must not see the one before it as
    // made in its future.
    let now = Utc::now();
    let retry = wait_for(&mut tx, account, client, now).await?;
    if retry > 0 {
        tx.rollback().await?;
        tracing::warn!(target: "security", account, client, retry_after = retry, "sign-in throttled");
        return Err(AppError::throttled(retry as u64));
    }
    // Forget failures older than the window while we are here, so the table stays small.
    sqlx::query("DELETE FROM sign_in_failures WHERE at < $1")
        .bind(format_ts(now - chrono::Duration::hours(1)))
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO sign_in_failures (account, client, at) VALUES ($1, $2, $3)")
        .bind(account)
        .bind(client)
        .bind(format_ts(now))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(now)
}

/// Checks an email and password. Refused at once, before the database, when the hashing queue
/// is full or the client is known to be waiting; then throttled per (account, client), per
/// client and (for clients that failed for it) per account; unknown accounts are checked
/// against a dummy hash. Every failure that reaches the hash gives "Wrong email or password."
pub async fn authenticate(
    db: &Db,
    hasher: &Hasher,
    waits: &Waits,
    email: &str,
    password: &str,
    client: &str,
) -> Result<AuthUser, AppError> {
    let now = Utc::now();
    if hasher.is_full() {
        return Err(AppError::busy());
    }
    let account = normalize_email(email);
    // Long enough for any real address; a longer one cannot exist, and is kept short in the table.
    let account: String = account.chars().take(254).collect();
    waits.check(client, &account, now)?;
    if let Err(e) = begin_attempt(db, &account, client).await {
        if let Some(secs) = e.retry_after() {
            waits.note(client, &account, Utc::now() + chrono::Duration::seconds(secs as i64));
        }
        return Err(e);
    }
    let (record, hash) = match user_with_hash(db, &account).await? {
        Some((record, hash)) => (Some(record), Some(hash)),
        None => (None, None),
    };
    let password = if password.len() > MAX_PASSWORD_BYTES { String::new() } else { password.to_string() };
    let ok = hasher.verify(password, hash).await?;
    match record {
        Some(rec) if ok && !rec.disabled => {
            sqlx::query("DELETE FROM sign_in_failures WHERE account = $1 AND client = $2")
                .bind(&account)
                .bind(client)
                .execute(&db.pool)
                .await?;
            waits.clear(client, &account);
            Ok(rec.user)
        }
        _ => {
            tracing::warn!(target: "security", account, client, "sign-in failed");
            Err(AppError::invalid_credentials())
        }
    }
}

/// Clients known to be waiting before they may try an account again, so that their attempts
/// are refused before any database query. The database stays the authority: an entry only
/// ever shortens the path to the answer it gave.
#[derive(Clone, Debug, Default)]
pub struct Waits {
    inner: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, DateTime<Utc>>>>,
}

/// Entries kept at most; expired ones go first.
const MAX_WAITS: usize = 10_000;

impl Waits {
    fn key(client: &str, account: &str) -> String {
        format!("{client} {account}")
    }

    /// 429 when `client` is known to be waiting before it may try `account` at `now`.
    fn check(&self, client: &str, account: &str, now: DateTime<Utc>) -> Result<(), AppError> {
        let until = self.inner.lock().ok().and_then(|m| m.get(&Waits::key(client, account)).copied());
        match until {
            Some(until) if until > now => {
                let secs = (until - now).num_seconds().max(1);
                Err(AppError::throttled(secs as u64))
            }
            _ => Ok(()),
        }
    }

    fn note(&self, client: &str, account: &str, until: DateTime<Utc>) {
        if let Ok(mut m) = self.inner.lock() {
            if m.len() >= MAX_WAITS {
                let now = Utc::now();
                m.retain(|_, u| *u > now);
            }
            if m.len() < MAX_WAITS {
                m.insert(Waits::key(client, account), until);
            }
        }
    }

    fn clear(&self, client: &str, account: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(&Waits::key(client, account));
        }
    }
}

/// The client address for throttling: the connection's peer, or with `trust_proxy` the
/// right-most `X-Forwarded-For` entry (the address the nearest proxy saw), port stripped; the
/// peer when that entry does not parse. IPv6 clients are grouped by their /64, which one
/// subscriber usually holds whole.
pub fn client_address(parts: &axum::http::request::Parts, trust_proxy: bool) -> String {
    let forwarded = trust_proxy
        .then(|| {
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(parse_forwarded)
        })
        .flatten();
    let ip = forwarded.or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
    match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        Some(ip) => ip.to_string(),
        None => "unknown".to_string(),
    }
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`[v6]:port`, `v4:port`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_reads_forwarded_for_only_when_trusted() {
        let req =
            axum::http::Request::builder().header("x-forwarded-for", "203.0.113.9, 198.51.100.7").body(()).unwrap();
        let (mut parts, _) = req.into_parts();
        parts.extensions.insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
        assert_eq!(client_address(&parts, false), "10.0.0.1");
        assert_eq!(client_address(&parts, true), "198.51.100.7");
        parts.headers.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(client_address(&parts, true), "10.0.0.1");
        // The right-most entry decides, port stripped; one that does not parse means the peer.
        parts.headers.insert("x-forwarded-for", "198.51.100.7, 203.0.113.9:4444".parse().unwrap());
        assert_eq!(client_address(&parts, true), "203.0.113.9");
        parts.headers.insert("x-forwarded-for", "198.51.100.7, garbage".parse().unwrap());
        assert_eq!(client_address(&parts, true), "10.0.0.1");
        parts.headers.insert("x-forwarded-for", "[2001:db8:1:2:3:4:5:6]:443".parse().unwrap());
        assert_eq!(client_address(&parts, true), "2001:db8:1:2::/64");
        parts.extensions.insert(ConnectInfo(SocketAddr::from(([0x2001, 0xdb8, 0, 7, 1, 2, 3, 4], 4000))));
        assert_eq!(client_address(&parts, false), "2001:db8:0:7::/64");
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
