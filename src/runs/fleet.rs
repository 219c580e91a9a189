//! The fleet as superusers see it: every worker seen in the last hour, the runs it holds claims
//! in, and for each run the keys where its snapshot differs from today's baseline.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::server::parse_snapshot;
use super::types::{Fleet, FleetRun, FleetWorker, RunStatus};
use crate::db::{format_ts, parse_stored};
use crate::error::AppError;
use crate::policy::store::PolicyStore;

/// How far back a worker counts as part of the fleet.
pub const FLEET_WINDOW: chrono::Duration = chrono::Duration::hours(1);

/// The workers seen since `now − FLEET_WINDOW`, most recent first.
pub async fn fleet(store: &PolicyStore, now: DateTime<Utc>) -> Result<Fleet, AppError> {
    let db = &store.db;
    let since = format_ts(now - FLEET_WINDOW);
    let seen = sqlx::query(
        "SELECT w.worker, w.token_id, COALESCE(t.name, '(deleted token)') AS token, MAX(w.last_seen_at) AS last_seen
         FROM run_workers w LEFT JOIN worker_tokens t ON t.id = w.token_id
         WHERE w.last_seen_at >= $1
         GROUP BY w.worker, w.token_id, t.name
         ORDER BY last_seen DESC, w.worker
         LIMIT 500",
    )
    .bind(&since)
    .fetch_all(&db.pool)
    .await?;
    // Live claims on the runs those workers were seen on, by (token, worker).
    let held = sqlx::query(
        "SELECT run_id, claimed_by, claimed_by_token, COUNT(*) AS n FROM blocks
         WHERE run_id IN (SELECT DISTINCT run_id FROM run_workers WHERE last_seen_at >= $1)
             AND state = 'claimed' AND lease_expires_at >= $2
         GROUP BY run_id, claimed_by, claimed_by_token
         ORDER BY run_id",
    )
    .bind(&since)
    .bind(format_ts(now))
    .fetch_all(&db.pool)
    .await?;
    let mut claims: BTreeMap<(i64, String), Vec<(i64, i64)>> = BTreeMap::new();
    for r in &held {
        let token: Option<i64> = r.try_get("claimed_by_token")?;
        let worker: Option<String> = r.try_get("claimed_by")?;
        if let (Some(token), Some(worker)) = (token, worker) {
            claims.entry((token, worker)).or_default().push((r.try_get("run_id")?, r.try_get("n")?));
        }
    }

    let today = store.resolve().await?;
    let baseline_revision = store.revision().await?;
    let mut runs: BTreeMap<i64, (RunStatus, i64, Vec<String>)> = BTreeMap::new();
    for run_id in claims.values().flatten().map(|(run, _)| *run) {
        if runs.contains_key(&run_id) {
            continue;
        }
        let row = sqlx::query("SELECT status, policy_revision, policy_snapshot FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&db.pool)
            .await?;
        let snapshot = parse_snapshot(run_id, &row.try_get::<String, _>("policy_snapshot")?)?;
        let differing = today
            .iter()
            .filter(|r| snapshot.get(&r.key).is_none_or(|k| k.value != r.value))
            .map(|r| r.key.clone())
            .collect();
        let status = parse_stored("runs.status", &row.try_get::<String, _>("status")?, RunStatus::parse)?;
        runs.insert(run_id, (status, row.try_get("policy_revision")?, differing));
    }

    let mut workers = Vec::new();
    for r in &seen {
        let worker: String = r.try_get("worker")?;
        let token_id: i64 = r.try_get("token_id")?;
        let held = claims.get(&(token_id, worker.clone())).cloned().unwrap_or_default();
        workers.push(FleetWorker {
            token: r.try_get("token")?,
            last_seen_at: r.try_get("last_seen")?,
            runs: held
                .into_iter()
                .filter_map(|(run_id, n)| {
                    runs.get(&run_id).map(|(status, revision, differing)| FleetRun {
                        run_id,
                        status: *status,
                        policy_revision: *revision,
                        held_blocks: n,
                        differing_keys: differing.clone(),
                    })
                })
                .collect(),
            worker,
        });
    }
    Ok(Fleet { since, baseline_revision, workers })
}
