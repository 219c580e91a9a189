//! Webhooks. A change enqueues one delivery per subscribed endpoint in its own transaction (an
//! outbox), so a delivery exists exactly when the change committed, and survives a crash or a
//! restart. A background task ([`spawn_dispatcher`]) sends due deliveries: a JSON body signed
//! with HMAC-SHA256, retried with exponential backoff for up to a day; a slow or dead endpoint
//! never slows a save, which only inserts a row.
//!
//! Signature: `X-Runtime-Policy-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`; also `X-Runtime-Policy-Event` and `X-Runtime-Policy-Delivery` (the id, the
//! same on every attempt, so a receiver can drop repeats).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value as Json};
use sha2::Sha256;
use sqlx::{Any, Row, Transaction};

use super::value::canonical_json;
use crate::db::{format_ts, Db};
use crate::error::AppError;

/// The events an endpoint can subscribe to.
pub const EVENTS: [&str; 4] = ["policy.changed", "change_request.opened", "change_request.decided", "run.created"];

/// How long a delivery is retried before it is marked failed.
pub const GIVE_UP_AFTER: Duration = Duration::hours(24);

/// A registered endpoint, as listed (the secret is never shown again).
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub events: String,
    pub created_by: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

/// One delivery in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// Registers an endpoint for `events` (`*` for all). The secret must be 16 characters or more.
pub async fn add_webhook(db: &Db, url: &str, secret: &str, events: &[String], by: &str) -> Result<i64, AppError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| AppError::invalid("URL", format!("is not a URL: \"{url}\"")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(AppError::invalid("URL", "must be an http:// or https:// address"));
    }
    if secret.chars().count() < 16 || secret.chars().any(char::is_control) {
        return Err(AppError::invalid("secret", "must be at least 16 characters, none of them control characters"));
    }
    let mut names: Vec<&str> = Vec::new();
    for e in events {
        let e = e.trim();
        if e != "*" && !EVENTS.contains(&e) {
            return Err(AppError::invalid(
                "--event",
                format!("must be one of {} or *, got \"{e}\"", EVENTS.join(", ")),
            ));
        }
        if !names.contains(&e) {
            names.push(e);
        }
    }
    if names.is_empty() {
        names.push("*");
    }
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO webhooks (url, secret, events, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(url)
    .bind(secret)
    .bind(names.join(" "))
    .bind(by)
    .bind(format_ts(Utc::now()))
    .fetch_one(&db.pool)
    .await?;
    tracing::warn!(target: "security", webhook = id, url, events = names.join(" "), by, "webhook registered");
    Ok(id)
}

/// Stops sending to an endpoint; its pending deliveries are marked failed.
pub async fn disable_webhook(db: &Db, id: i64) -> Result<(), AppError> {
    let now = format_ts(Utc::now());
    let mut tx = db.begin_write().await?;
    let done = sqlx::query("UPDATE webhooks SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::invalid("ID", format!("no active webhook {id}")));
    }
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = 'webhook disabled' WHERE webhook_id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list_webhooks(db: &Db) -> Result<Vec<Webhook>, AppError> {
    let rows = sqlx::query("SELECT id, url, events, created_by, created_at, disabled_at FROM webhooks ORDER BY id")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Webhook {
                id: r.try_get("id")?,
                url: r.try_get("url")?,
                events: r.try_get("events")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
                disabled_at: r.try_get("disabled_at")?,
            })
        })
        .collect()
}

/// The newest deliveries, newest first.
pub async fn deliveries(db: &Db, limit: i64) -> Result<Vec<Delivery>, AppError> {
    let rows = sqlx::query(
        "SELECT id, webhook_id, event, status, attempts, next_attempt_at, last_status, last_error
         FROM webhook_deliveries ORDER BY id DESC LIMIT $1",
    )
    .bind(limit.clamp(1, 1000))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Delivery {
                id: r.try_get("id")?,
                webhook_id: r.try_get("webhook_id")?,
                event: r.try_get("event")?,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}

/// Queues one delivery of `event` per active endpoint subscribed to it, in the caller's
/// transaction.
pub async fn enqueue(tx: &mut Transaction<'static, Any>, event: &str, payload: &Json) -> Result<(), AppError> {
    let hooks = sqlx::query("SELECT id, events FROM webhooks WHERE disabled_at IS NULL").fetch_all(&mut **tx).await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let now = format_ts(Utc::now());
    let body = canonical_json(&json!({ "event": event, "at": now, "data": payload }));
    for h in hooks {
        let events: String = h.try_get("events")?;
        if !events.split_whitespace().any(|e| e == "*" || e == event) {
            continue;
        }
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, event, payload, created_at, status, attempts, next_attempt_at)
             VALUES ($1, $2, $3, $4, 'pending', 0, $4)",
        )
        .bind(h.try_get::<i64, _>("id")?)
        .bind(event)
        .bind(&body)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Queues a test delivery to one endpoint (the page's and the CLI's "send test").
pub async fn send_test(db: &Db, id: i64) -> Result<(), AppError> {
    let now = format_ts(Utc::now());
    let body = canonical_json(&json!({ "event": "test", "at": now, "data": { "webhook": id } }));
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, created_at, status, attempts, next_attempt_at)
         SELECT id, 'test', $1, $2, 'pending', 0, $2 FROM webhooks WHERE id = $3 AND disabled_at IS NULL",
    )
    .bind(&body)
    .bind(&now)
    .bind(id)
    .execute(&db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::invalid("ID", format!("no active webhook {id}")));
    }
    Ok(())
}

/// Sends a delivery again from now (a failed or delivered one too).
pub async fn redeliver(db: &Db, delivery: i64) -> Result<(), AppError> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, created_at = $1
         WHERE id = $2 AND webhook_id IN (SELECT id FROM webhooks WHERE disabled_at IS NULL)",
    )
    .bind(format_ts(Utc::now()))
    .bind(delivery)
    .execute(&db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::invalid("DELIVERY", format!("no delivery {delivery} to an active webhook")));
    }
    Ok(())
}

/// `t=<unix>,v1=<hex>`: the signature of `body` at `t` with `secret`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    // HMAC takes a key of any length: this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait after attempt `n` failed: 2^n seconds, at most an hour.
pub fn retry_after(attempts: i64) -> Duration {
    Duration::seconds(2i64.saturating_pow(attempts.clamp(0, 12) as u32).min(3600))
}

/// Sends every delivery due at `now` (at most 20 per call) and records each outcome; returns
/// how many were sent. Each is first leased for a minute with a conditional update, so two
/// instances never send the same attempt.
pub async fn deliver_due(db: &Db, http: &reqwest::Client, now: DateTime<Utc>) -> Result<usize, AppError> {
    let due = sqlx::query(
        "SELECT d.id, d.event, d.payload, d.attempts, d.next_attempt_at, d.created_at, w.url, w.secret
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 ORDER BY d.id LIMIT 20",
    )
    .bind(format_ts(now))
    .fetch_all(&db.pool)
    .await?;
    let mut sent = 0;
    for row in due {
        let id: i64 = row.try_get("id")?;
        let due_at: String = row.try_get("next_attempt_at")?;
        let lease = sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND status = 'pending'")
            .bind(format_ts(now + Duration::seconds(60)))
            .bind(id)
            .bind(&due_at)
            .execute(&db.pool)
            .await?;
        if lease.rows_affected() != 1 {
            continue;
        }
        let body: String = row.try_get("payload")?;
        let secret: String = row.try_get("secret")?;
        let event: String = row.try_get("event")?;
        let url: String = row.try_get("url")?;
        let attempts = row.try_get::<i64, _>("attempts")? + 1;
        let result = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-runtime-policy-event", &event)
            .header("x-runtime-policy-delivery", id.to_string())
            .header("x-runtime-policy-signature", signature(&secret, now.timestamp(), &body))
            .body(body)
            .send()
            .await;
        let (status, error) = match result {
            Ok(res) if res.status().is_success() => (Some(res.status().as_u16() as i64), None),
            Ok(res) => (Some(res.status().as_u16() as i64), Some(format!("the endpoint answered {}", res.status()))),
            Err(e) => (None, Some(if e.is_timeout() { "timed out".to_string() } else { format!("{e}") })),
        };
        let created = crate::db::parse_ts(&row.try_get::<String, _>("created_at")?).unwrap_or(now);
        let next = now + retry_after(attempts);
        let state = match &error {
            None => "delivered",
            Some(_) if next - created > GIVE_UP_AFTER => "failed",
            Some(_) => "pending",
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_status = $4,
                 last_error = $5, delivered_at = $6 WHERE id = $7",
        )
        .bind(state)
        .bind(attempts)
        .bind(format_ts(next))
        .bind(status)
        .bind(error.clone())
        .bind((state == "delivered").then(|| format_ts(now)))
        .bind(id)
        .execute(&db.pool)
        .await?;
        db.metrics.inc("webhook_deliveries_total", &[("outcome", state)]);
        if let Some(e) = error {
            tracing::warn!(delivery = id, url, attempts, state, "webhook delivery failed: {e}");
        }
        sent += 1;
    }
    Ok(sent)
}

/// Sends due deliveries every second, for as long as the server runs.
pub fn spawn_dispatcher(db: Db) {
    tokio::spawn(async move {
        let http = match reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(StdDuration::from_secs(5))
            .timeout(StdDuration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("webhooks: cannot build the HTTP client: {e}");
                return;
            }
        };
        let mut tick = tokio::time::interval(StdDuration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = deliver_due(&db, &http, Utc::now()).await {
                tracing::warn!("webhooks: {e}");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_backoff() {
        // HMAC-SHA256("key", "1.{}") computed independently (Python's hmac module).
        assert_eq!(
            signature("key", 1, "{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_eq!(retry_after(1), Duration::seconds(2));
        assert_eq!(retry_after(5), Duration::seconds(32));
        assert_eq!(retry_after(40), Duration::seconds(3600));
    }
}
