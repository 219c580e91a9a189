//! What workers report about a run (a provider that ignored caching, say), bounded per run in
//! number and rate, and the workers seen on each run. A report never changes a block or the
//! run's status: a warning never fails a run.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::claims::Holder;
use super::input::check_text;
use super::server::no_run;
use super::types::{EventLevel, EventSummary, WorkerSeen};
use crate::db::{format_ts, Db};
use crate::error::AppError;

/// The most events one run keeps.
pub const MAX_EVENTS_PER_RUN: i64 = 1_000;
/// The most events one token may report on one run, so one worker cannot use up the run's room.
pub const MAX_EVENTS_PER_TOKEN: i64 = 500;
/// The most events one run takes in any minute.
pub const MAX_EVENTS_PER_MINUTE: i64 = 120;
/// The longest message.
pub const MAX_MESSAGE_CHARS: usize = 1_000;

/// A report as a worker sends it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub level: EventLevel,
    pub code: String,
    pub message: String,
    pub block_uid: Option<String>,
}

impl NewEvent {
    pub fn parse(level: &str, code: &str, message: &str, block_uid: Option<&str>) -> Result<NewEvent, AppError> {
        let level = EventLevel::parse(level)
            .ok_or_else(|| AppError::invalid("level", format!("must be info or warning, got \"{level}\"")))?;
        let code_ok = (1..=64).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
        if !code_ok {
            return Err(AppError::invalid("code", "must be 1 to 64 characters of a-z, 0-9, '_', '.' or '-'"));
        }
        check_text("message", message, MAX_MESSAGE_CHARS)?;
        if let Some(uid) = block_uid {
            if uid.is_empty() || uid.len() > 64 {
                return Err(AppError::invalid("block_uid", "must be 1 to 64 characters"));
            }
        }
        Ok(NewEvent {
            level,
            code: code.to_string(),
            message: message.to_string(),
            block_uid: block_uid.map(str::to_string),
        })
    }
}

/// The most workers one run keeps track of; names beyond it are not recorded (the work is).
pub const MAX_WORKERS_PER_RUN: i64 = 200;

/// Notes that `holder` worked on `run_id` at `now`.
pub async fn seen(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: i64,
    holder: Holder<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let now = format_ts(now);
    let updated =
        sqlx::query("UPDATE run_workers SET last_seen_at = $4 WHERE run_id = $1 AND token_id = $2 AND worker = $3")
            .bind(run_id)
            .bind(holder.token)
            .bind(holder.worker.as_str())
            .bind(&now)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if updated == 0 {
        sqlx::query(
            "INSERT INTO run_workers (run_id, token_id, worker, first_seen_at, last_seen_at)
             SELECT $1, $2, $3, $4, $4 WHERE (SELECT COUNT(*) FROM run_workers WHERE run_id = $1) < $5
             ON CONFLICT (run_id, token_id, worker) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        )
        .bind(run_id)
        .bind(holder.token)
        .bind(holder.worker.as_str())
        .bind(&now)
        .bind(MAX_WORKERS_PER_RUN)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Stores a report. 429 when the run already holds [`MAX_EVENTS_PER_RUN`] events, when the
/// token reported [`MAX_EVENTS_PER_TOKEN`] on it, or when the run took [`MAX_EVENTS_PER_MINUTE`]
/// in the last minute; 422 when it names a block the run lacks.
pub async fn record(db: &Db, run_id: i64, holder: Holder<'_>, event: &NewEvent) -> Result<i64, AppError> {
    let now = db.now().await?;
    let mut tx = db.begin_write().await?;
    // The run row is locked (PostgreSQL; SQLite's write transaction is already exclusive), so
    // concurrent reports count one after another against the limits.
    let lock = if db.backend == crate::config::Backend::Postgres { " FOR UPDATE" } else { "" };
    sqlx::query(&format!("SELECT id FROM runs WHERE id = $1{lock}"))
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| no_run(run_id))?;
    if let Some(uid) = &event.block_uid {
        let exists = sqlx::query("SELECT 1 AS one FROM blocks WHERE run_id = $1 AND block_uid = $2")
            .bind(run_id)
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(AppError::invalid("block_uid", format!("run {run_id} has no block {uid}")));
        }
    }
    let minute_ago = format_ts(now - chrono::Duration::seconds(60));
    let row = sqlx::query(
        "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN created_at > $2 THEN 1 ELSE 0 END), 0) AS recent,
             COALESCE(SUM(CASE WHEN token_id = $3 THEN 1 ELSE 0 END), 0) AS mine
         FROM run_events WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(&minute_ago)
    .bind(holder.token)
    .fetch_one(&mut *tx)
    .await?;
    let (total, recent, mine): (i64, i64, i64) = (row.try_get("total")?, row.try_get("recent")?, row.try_get("mine")?);
    if total >= MAX_EVENTS_PER_RUN {
        return Err(AppError::TooManyRequests {
            message: format!("run {run_id} already holds {MAX_EVENTS_PER_RUN} events, the most a run keeps"),
            retry_after_secs: 3600,
        });
    }
    if mine >= MAX_EVENTS_PER_TOKEN {
        return Err(AppError::TooManyRequests {
            message: format!(
                "this token already reported {MAX_EVENTS_PER_TOKEN} events on run {run_id}, the most one token may; \
                 the rest of the run's room is kept for other workers"
            ),
            retry_after_secs: 3600,
        });
    }
    if recent >= MAX_EVENTS_PER_MINUTE {
        return Err(AppError::TooManyRequests {
            message: format!("run {run_id} took {MAX_EVENTS_PER_MINUTE} events in the last minute; send fewer"),
            retry_after_secs: 60,
        });
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO run_events (run_id, created_at, level, code, message, block_uid, worker, token_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(run_id)
    .bind(format_ts(now))
    .bind(event.level.as_str())
    .bind(&event.code)
    .bind(&event.message)
    .bind(event.block_uid.as_deref())
    .bind(holder.worker.as_str())
    .bind(holder.token)
    .fetch_one(&mut *tx)
    .await?;
    seen(&mut tx, run_id, holder, now).await?;
    tx.commit().await?;
    db.metrics.inc("run_events_total", &[("level", event.level.as_str())]);
    if event.level == EventLevel::Warning {
        tracing::warn!(run = run_id, code = %event.code, worker = holder.worker.as_str(), "worker warning: {}", event.message);
    }
    Ok(id)
}

/// A run's events by code: the count and the latest of each, warnings first.
pub async fn summary(db: &Db, run_id: i64) -> Result<Vec<EventSummary>, AppError> {
    let rows = sqlx::query(
        "SELECT e.code, e.level, e.message, e.created_at, e.block_uid, e.worker, c.n
         FROM run_events e
         JOIN (SELECT code, COUNT(*) AS n, MAX(id) AS last_id FROM run_events WHERE run_id = $1 GROUP BY code) c
             ON e.id = c.last_id
         ORDER BY CASE WHEN e.level = 'warning' THEN 0 ELSE 1 END, e.code",
    )
    .bind(run_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(EventSummary {
                code: r.try_get("code")?,
                level: crate::db::parse_stored(
                    "run_events.level",
                    &r.try_get::<String, _>("level")?,
                    EventLevel::parse,
                )?,
                count: r.try_get("n")?,
                latest_message: r.try_get("message")?,
                latest_at: r.try_get("created_at")?,
                latest_block_uid: r.try_get("block_uid")?,
                latest_worker: r.try_get("worker")?,
            })
        })
        .collect()
}

/// The workers seen on a run, most recent first, with their token's name.
pub async fn workers(db: &Db, run_id: i64) -> Result<Vec<WorkerSeen>, AppError> {
    let rows = sqlx::query(
        "SELECT w.worker, COALESCE(t.name, '(deleted token)') AS token, w.first_seen_at, w.last_seen_at
         FROM run_workers w LEFT JOIN worker_tokens t ON t.id = w.token_id
         WHERE w.run_id = $1 ORDER BY w.last_seen_at DESC, w.worker LIMIT 50",
    )
    .bind(run_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WorkerSeen {
                worker: r.try_get("worker")?,
                token: r.try_get("token")?,
                first_seen_at: r.try_get("first_seen_at")?,
                last_seen_at: r.try_get("last_seen_at")?,
            })
        })
        .collect()
}
