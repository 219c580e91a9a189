//! Claims: workers take batches of a run's blocks under a lease, then complete or fail each.
//! Two workers never hold the same block, and only the holder of a claim may report on it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::batching;
use super::input::{check_text, WorkerName, MAX_ERROR_CHARS, MAX_LEASE_SECS, MAX_RESULT_CHARS};
use super::server::{no_run, parse_snapshot};
use super::snapshot::Snapshot;
use super::types::{Batch, BatchOutcome, BlockOutcome, BlockState, Claim, ClaimedBlock};
use crate::config::Backend;
use crate::db::{format_ts, parse_stored, Db};
use crate::error::AppError;

struct RunRow {
    snapshot: Snapshot,
    sha256: String,
}

async fn run_row(tx: &mut sqlx::Transaction<'static, sqlx::Any>, run_id: i64) -> Result<RunRow, AppError> {
    let row = sqlx::query("SELECT policy_snapshot, snapshot_sha256 FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| no_run(run_id))?;
    let text: String = row.try_get("policy_snapshot")?;
    Ok(RunRow { snapshot: parse_snapshot(run_id, &text)?, sha256: row.try_get("snapshot_sha256")? })
}

/// Counts finished blocks on the run row and moves its status on. The counters change in one
/// single-row UPDATE whose expressions read the row as locked, so the last block to finish
/// always sees every other one and sets the final status.
async fn count_finished(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: i64,
    done: i64,
    failed: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE runs SET
             blocks_done = blocks_done + $2,
             blocks_failed = blocks_failed + $3,
             status = CASE
                 WHEN blocks_done + blocks_failed + $2 + $3 >= block_count
                     THEN CASE WHEN blocks_failed + $3 > 0 THEN 'failed' ELSE 'done' END
                 ELSE 'running' END
         WHERE id = $1",
    )
    .bind(run_id)
    .bind(done)
    .bind(failed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Who holds a claim: the token that made it (only it may complete or fail the block) and the
/// worker name it gave (a label).
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    pub token: i64,
    pub worker: &'a WorkerName,
}

/// Claims the next batch of a run's blocks for `holder`: at most the snapshot's
/// `worker.claim_batch_size`, in `block_index` order as the snapshot's `worker.claim_ordering`
/// says. Pending blocks and blocks whose lease has expired are claimable; an expired block on
/// its last attempt is marked failed instead. Two workers never get the same block: on
/// PostgreSQL the rows are locked with `FOR UPDATE SKIP LOCKED` in a materialized CTE (so the
/// batch is picked once and never exceeds its size), on SQLite the whole claim is one write
/// transaction.
pub async fn claim(
    db: &Db,
    run_id: i64,
    holder: Holder<'_>,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Claim, AppError> {
    let mut tx = db.begin_write().await?;
    let run = run_row(&mut tx, run_id).await?;
    let batch_size = run.snapshot.claim_batch_size();
    let max_attempts = run.snapshot.max_retries() + 1;
    let order = if run.snapshot.claim_descending() { "DESC" } else { "ASC" };
    let now_text = format_ts(now);
    let lease = chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(MAX_LEASE_SECS));
    let expires = format_ts(now.checked_add_signed(lease).unwrap_or(now));

    // A worker died holding the last allowed attempt, or its token was revoked then: the block
    // is finished, as failed.
    let expiring =
        "run_id = $1 AND attempts >= $3 AND (state = 'pending' OR (state = 'claimed' AND lease_expires_at < $2))";
    let set_failed = "state = 'failed', lease_expires_at = NULL, finished_at = $2,
             error = CASE WHEN state = 'claimed' THEN 'the lease expired on the last allowed attempt'
                     ELSE 'the claim was ended (its token revoked) on the last allowed attempt' END";
    // On PostgreSQL the rows are locked in block_index order, as a batch completion locks them.
    let expire_sql = if db.backend == Backend::Postgres {
        format!(
            "WITH expiring AS MATERIALIZED (
                 SELECT run_id, block_uid FROM blocks WHERE {expiring} ORDER BY block_index FOR UPDATE)
             UPDATE blocks SET {set_failed}
             FROM expiring WHERE blocks.run_id = expiring.run_id AND blocks.block_uid = expiring.block_uid
             RETURNING blocks.block_uid"
        )
    } else {
        format!("UPDATE blocks SET {set_failed} WHERE {expiring} RETURNING block_uid")
    };
    let expired: Vec<AnyRow> =
        sqlx::query(&expire_sql).bind(run_id).bind(&now_text).bind(max_attempts).fetch_all(&mut *tx).await?;
    if !expired.is_empty() {
        count_finished(&mut tx, run_id, 0, expired.len() as i64).await?;
    }

    let claimable = "run_id = $1 AND (state = 'pending' OR (state = 'claimed' AND lease_expires_at < $3))";
    let set = "state = 'claimed', claimed_by = $2, claimed_at = $3, lease_expires_at = $4, claimed_by_token = $6,
             attempts = attempts + 1";
    let sql = if db.backend == Backend::Postgres {
        format!(
            "WITH picked AS MATERIALIZED (
                 SELECT run_id, block_uid FROM blocks WHERE {claimable}
                 ORDER BY block_index {order} LIMIT $5 FOR UPDATE SKIP LOCKED)
             UPDATE blocks SET {set}
             FROM picked WHERE blocks.run_id = picked.run_id AND blocks.block_uid = picked.block_uid
             RETURNING blocks.block_uid, blocks.block_index, blocks.text, blocks.attempts"
        )
    } else {
        format!(
            "UPDATE blocks SET {set}
             WHERE (run_id, block_uid) IN (
                 SELECT run_id, block_uid FROM blocks WHERE {claimable} ORDER BY block_index {order} LIMIT $5)
             RETURNING block_uid, block_index, text, attempts"
        )
    };
    let rows = sqlx::query(&sql)
        .bind(run_id)
        .bind(holder.worker.as_str())
        .bind(&now_text)
        .bind(&expires)
        .bind(batch_size)
        .bind(holder.token)
        .fetch_all(&mut *tx)
        .await?;
    let mut blocks = rows
        .iter()
        .map(|r| {
            Ok(ClaimedBlock {
                block_uid: r.try_get("block_uid")?,
                block_index: r.try_get("block_index")?,
                text: r.try_get("text")?,
                attempt: r.try_get("attempts")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // RETURNING gives no order.
    blocks.sort_by_key(|b| b.block_index);
    if order == "DESC" {
        blocks.reverse();
    }
    let batches =
        if run.snapshot.batching() { pack_batches(&mut tx, run_id, &run.snapshot, &blocks).await? } else { vec![] };
    if !blocks.is_empty() {
        sqlx::query("UPDATE runs SET status = 'running' WHERE id = $1 AND status = 'pending'")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
    }
    super::events::seen(&mut tx, run_id, holder, now).await?;
    let counts = sqlx::query("SELECT block_count, blocks_done, blocks_failed FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await?;
    let finished = counts.try_get::<i64, _>("blocks_done")? + counts.try_get::<i64, _>("blocks_failed")?
        >= counts.try_get::<i64, _>("block_count")?;
    tx.commit().await?;
    db.metrics.add("block_claims_total", &[], blocks.len() as u64);
    Ok(Claim { run_id, batch_size, blocks, batches, lease_expires_at: expires, snapshot_sha256: run.sha256, finished })
}

/// Packs claimed blocks into batches within the snapshot's token budget (`batching.rs`) and
/// marks each block with its batch.
async fn pack_batches(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: i64,
    snapshot: &Snapshot,
    blocks: &[ClaimedBlock],
) -> Result<Vec<Batch>, AppError> {
    let budget = batching::budget(snapshot.max_tokens(), snapshot.batching_margin_hundredths());
    let sizes: Vec<i64> = blocks.iter().map(|b| batching::estimate_tokens(&b.text)).collect();
    let claim_id = {
        use rand::Rng;
        let n: u64 = rand::thread_rng().gen();
        format!("{n:016x}")
    };
    let mut batches = Vec::new();
    for (n, range) in batching::pack(&sizes, budget).into_iter().enumerate() {
        let batch_id = format!("c{claim_id}-{n}");
        let members = &blocks[range.clone()];
        let placeholders: Vec<String> = (0..members.len()).map(|i| format!("${}", i + 3)).collect();
        let sql =
            format!("UPDATE blocks SET batch_id = $1 WHERE run_id = $2 AND block_uid IN ({})", placeholders.join(", "));
        let mut q = sqlx::query(&sql).bind(&batch_id).bind(run_id);
        for b in members {
            q = q.bind(&b.block_uid);
        }
        q.execute(&mut **tx).await?;
        let rows: Vec<String> = (0..members.len()).map(|i| format!("($1, $2, ${})", i + 3)).collect();
        let sql = format!("INSERT INTO run_batches (run_id, batch_id, block_uid) VALUES {}", rows.join(", "));
        let mut q = sqlx::query(&sql).bind(run_id).bind(&batch_id);
        for b in members {
            q = q.bind(&b.block_uid);
        }
        q.execute(&mut **tx).await?;
        batches.push(Batch {
            batch_id,
            block_uids: members.iter().map(|b| b.block_uid.clone()).collect(),
            estimated_tokens: sizes[range].iter().sum(),
            budget,
        });
    }
    Ok(batches)
}

/// What became of a block after a completion or a failure.
/// Why a completion or failure matched no claim: no such block, or a claim this token does
/// not hold at that attempt. It says nothing about who holds it or at which attempt.
async fn not_held(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: i64,
    uid: &str,
    attempt: i64,
) -> Result<AppError, AppError> {
    let exists = sqlx::query("SELECT 1 AS one FROM blocks WHERE run_id = $1 AND block_uid = $2")
        .bind(run_id)
        .bind(uid)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    Ok(if exists {
        AppError::Conflict(format!("block {uid} is not held by this token at attempt {attempt}"))
    } else {
        AppError::NotFound(format!("no block {uid} in run {run_id}"))
    })
}

/// Stores a claimed block's result. Only the token holding the claim at `attempt` may.
pub async fn complete(
    db: &Db,
    run_id: i64,
    uid: &str,
    holder: Holder<'_>,
    attempt: i64,
    result: &str,
) -> Result<BlockOutcome, AppError> {
    check_text("result", result, MAX_RESULT_CHARS)?;
    let mut tx = db.begin_write().await?;
    let run = run_row(&mut tx, run_id).await?;
    if !complete_in(&mut tx, run_id, &run.snapshot, uid, holder, attempt, result).await? {
        let e = not_held(&mut tx, run_id, uid, attempt).await?;
        tx.rollback().await?;
        return Err(e);
    }
    count_finished(&mut tx, run_id, 1, 0).await?;
    tx.commit().await?;
    db.metrics.inc("block_completions_total", &[]);
    Ok(BlockOutcome { block_uid: uid.to_string(), state: BlockState::Done, attempts: attempt })
}

/// Stores a result when `holder` holds the block at `attempt`, with the model, temperature and
/// max tokens the run's snapshot gave it; false when it does not hold it.
async fn complete_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: i64,
    snapshot: &Snapshot,
    uid: &str,
    holder: Holder<'_>,
    attempt: i64,
    result: &str,
) -> Result<bool, AppError> {
    let n = sqlx::query(
        "UPDATE blocks SET state = 'done', result = $5, error = NULL, lease_expires_at = NULL, finished_at = $6,
             result_model = $7, result_temperature = $8, result_max_tokens = $9
         WHERE run_id = $1 AND block_uid = $2 AND state = 'claimed' AND claimed_by_token = $3 AND attempts = $4",
    )
    .bind(run_id)
    .bind(uid)
    .bind(holder.token)
    .bind(attempt)
    .bind(result)
    .bind(format_ts(Utc::now()))
    .bind(snapshot.model())
    .bind(snapshot.temperature_text())
    .bind(snapshot.max_tokens())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Records a failed attempt. The block is claimable again until it has been tried
/// 1 + the snapshot's `worker.max_retries` times; then it is failed for good.
pub async fn fail(
    db: &Db,
    run_id: i64,
    uid: &str,
    holder: Holder<'_>,
    attempt: i64,
    error: &str,
) -> Result<BlockOutcome, AppError> {
    check_text("error", error, MAX_ERROR_CHARS)?;
    let mut tx = db.begin_write().await?;
    let run = run_row(&mut tx, run_id).await?;
    let Some(state) = fail_in(&mut tx, run_id, &run.snapshot, uid, holder, attempt, error).await? else {
        let e = not_held(&mut tx, run_id, uid, attempt).await?;
        tx.rollback().await?;
        return Err(e);
    };
    if state == BlockState::Failed {
        count_finished(&mut tx, run_id, 0, 1).await?;
    }
    tx.commit().await?;
    db.metrics.inc("block_failures_total", &[]);
    Ok(BlockOutcome { block_uid: uid.to_string(), state, attempts: attempt })
}

/// Records a failed attempt when `holder` holds the block at `attempt`: the block's new state
/// (pending to be retried, or failed), or None when it does not hold it.
async fn fail_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: i64,
    snapshot: &Snapshot,
    uid: &str,
    holder: Holder<'_>,
    attempt: i64,
    error: &str,
) -> Result<Option<BlockState>, AppError> {
    let max_attempts = snapshot.max_retries() + 1;
    let row = sqlx::query(
        "UPDATE blocks SET
             state = CASE WHEN attempts >= $5 THEN 'failed' ELSE 'pending' END,
             claimed_by = CASE WHEN attempts >= $5 THEN claimed_by ELSE NULL END,
             claimed_by_token = NULL,
             finished_at = CASE WHEN attempts >= $5 THEN $7 ELSE NULL END,
             lease_expires_at = NULL,
             error = $6
         WHERE run_id = $1 AND block_uid = $2 AND state = 'claimed' AND claimed_by_token = $3 AND attempts = $4
         RETURNING state",
    )
    .bind(run_id)
    .bind(uid)
    .bind(holder.token)
    .bind(attempt)
    .bind(max_attempts)
    .bind(error)
    .bind(format_ts(Utc::now()))
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(parse_stored("blocks.state", &row.try_get::<String, _>("state")?, BlockState::parse)?)),
    }
}

/// One block's entry in a batch completion: its result, or why the model gave none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    pub block_uid: String,
    pub outcome: Result<String, String>,
}

/// The most entries one batch completion takes: a claim holds at most 100 blocks
/// (`worker.claim_batch_size`'s maximum).
pub const MAX_BATCH_ENTRIES: usize = 100;

/// Completes a batch: one entry per block of the batch, none extra and none twice (else 422
/// and nothing is written). Each block the token still holds in this batch is done (or, for
/// an entry with an error, failed like any failure, so it is retried); a block with no entry is
/// failed with that reason and retried. A block whose lease expired and that another claim took
/// since (or that is finished) is left as it is and reported with no state, so no block is
/// finished twice.
pub async fn complete_batch(
    db: &Db,
    run_id: i64,
    batch_id: &str,
    holder: Holder<'_>,
    entries: &[BatchEntry],
) -> Result<Vec<BatchOutcome>, AppError> {
    if entries.len() > MAX_BATCH_ENTRIES {
        return Err(AppError::invalid(
            "results",
            format!("holds {} entries; a batch holds at most {MAX_BATCH_ENTRIES} blocks", entries.len()),
        ));
    }
    let mut named = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        match &e.outcome {
            Ok(result) => check_text(&format!("results[{i}].result"), result, MAX_RESULT_CHARS)?,
            Err(error) => check_text(&format!("results[{i}].error"), error, MAX_ERROR_CHARS)?,
        }
        if !named.insert(e.block_uid.as_str()) {
            return Err(AppError::invalid(
                &format!("results[{i}].block_uid"),
                format!("{} is named twice; give one result per block", e.block_uid),
            ));
        }
    }
    // The database's clock, as claims and events use, so the fleet's "seen in the last hour"
    // holds across instances whose host clocks differ.
    let now = db.now().await?;
    let mut tx = db.begin_write().await?;
    let run = run_row(&mut tx, run_id).await?;
    // The batch's blocks as the claim packed them, locked in block_index order on PostgreSQL
    // (the order a claim locks expiring blocks in), so two transactions never wait on each other.
    let lock = if db.backend == Backend::Postgres { "FOR UPDATE OF b" } else { "" };
    let members = sqlx::query(&format!(
        "SELECT b.block_uid, b.attempts, b.state, b.claimed_by_token, b.batch_id
         FROM run_batches m JOIN blocks b ON b.run_id = m.run_id AND b.block_uid = m.block_uid
         WHERE m.run_id = $1 AND m.batch_id = $2
         ORDER BY b.block_index {lock}"
    ))
    .bind(run_id)
    .bind(batch_id)
    .fetch_all(&mut *tx)
    .await?;
    if members.is_empty() {
        return Err(AppError::NotFound(format!("no batch {batch_id} in run {run_id}")));
    }
    let mut held = Vec::new();
    for r in &members {
        let uid: String = r.try_get("block_uid")?;
        let state: String = r.try_get("state")?;
        let token: Option<i64> = r.try_get("claimed_by_token")?;
        let current: Option<String> = r.try_get("batch_id")?;
        let attempts: i64 = r.try_get("attempts")?;
        let holds = state == "claimed" && token == Some(holder.token) && current.as_deref() == Some(batch_id);
        held.push((uid, holds.then_some(attempts)));
    }
    for (i, e) in entries.iter().enumerate() {
        if !held.iter().any(|(uid, _)| *uid == e.block_uid) {
            return Err(AppError::invalid(
                &format!("results[{i}].block_uid"),
                format!("{} is not in batch {batch_id}", e.block_uid),
            ));
        }
    }
    if !held.iter().any(|(_, attempt)| attempt.is_some()) {
        return Err(AppError::Conflict(format!(
            "batch {batch_id} is no longer held by this token: its leases expired and its blocks were claimed again or finished"
        )));
    }
    let (mut done, mut failed) = (0, 0);
    let mut outcomes = Vec::new();
    for (uid, attempt) in held {
        let Some(attempt) = attempt else {
            outcomes.push(BatchOutcome { block_uid: uid, state: None, attempts: None });
            continue;
        };
        let entry = entries.iter().find(|e| e.block_uid == uid);
        let state = match entry.map(|e| &e.outcome) {
            Some(Ok(result)) => complete_in(&mut tx, run_id, &run.snapshot, &uid, holder, attempt, result)
                .await?
                .then_some(BlockState::Done),
            Some(Err(error)) => fail_in(&mut tx, run_id, &run.snapshot, &uid, holder, attempt, error).await?,
            None => {
                let why = "the batch's results had no entry for this block";
                fail_in(&mut tx, run_id, &run.snapshot, &uid, holder, attempt, why).await?
            }
        };
        match state {
            Some(BlockState::Done) => done += 1,
            Some(BlockState::Failed) => failed += 1,
            _ => {}
        }
        outcomes.push(BatchOutcome { block_uid: uid, state, attempts: Some(attempt) });
    }
    if done + failed > 0 {
        count_finished(&mut tx, run_id, done, failed).await?;
    }
    super::events::seen(&mut tx, run_id, holder, now).await?;
    tx.commit().await?;
    db.metrics.add("block_completions_total", &[], done as u64);
    Ok(outcomes)
}
