//! Runs on the server: creation with its snapshot in one transaction, the snapshot read, and
//! the block claims, completions and failures workers make. Plain async functions over the
//! pool, called by the server functions, the worker API, the CLI and the tests.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::api::{BlockCounts, RunDetail, RunSummary, SnapshotKeyView};
use super::snapshot::Snapshot;
use crate::auth::{AuthUser, Role};
use crate::config::Backend;
use crate::db::{format_ts, Db};
use crate::policy::server::PolicyStore;
use crate::policy::value::{canonical_json, truncate};
use crate::policy::{provenance, spec, Layer};

/// Most blocks one run may hold.
pub const MAX_BLOCKS: usize = 10_000;
/// Most characters one block's text may hold.
pub const MAX_BLOCK_CHARS: usize = 100_000;
/// Most characters of a block's result.
pub const MAX_RESULT_CHARS: usize = 1_000_000;
/// Most characters of a failure message.
pub const MAX_ERROR_CHARS: usize = 2_000;
/// The lease a claim gets when the worker names none, and the bounds of the one it may name.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);
pub const MIN_LEASE_SECS: i64 = 1;
pub const MAX_LEASE_SECS: i64 = 3_600;

/// Everything that can go wrong with runs, each with the status an API client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// Input that is not allowed; `field` names it.
    Invalid { field: String, message: String },
    /// The body is not JSON at all.
    Malformed(String),
    /// No such run (or not one the caller may see), or no such block.
    NotFound(String),
    /// The block is not held by this worker at this attempt (lease lost, already finished).
    Conflict(String),
    Internal,
}

impl RunError {
    pub fn invalid(field: &str, message: impl Into<String>) -> RunError {
        RunError::Invalid { field: field.to_string(), message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RunError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            RunError::Malformed(_) => StatusCode::BAD_REQUEST,
            RunError::NotFound(_) => StatusCode::NOT_FOUND,
            RunError::Conflict(_) => StatusCode::CONFLICT,
            RunError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            RunError::Invalid { field, .. } => Some(field),
            RunError::Malformed(_) => Some("body"),
            _ => None,
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Invalid { field, message } => write!(f, "{field}: {message}"),
            RunError::Malformed(m) => write!(f, "body: {m}"),
            RunError::NotFound(m) | RunError::Conflict(m) => f.write_str(m),
            RunError::Internal => f.write_str("Internal error; the server log has the details."),
        }
    }
}

impl From<sqlx::Error> for RunError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error in runs");
        RunError::Internal
    }
}

impl From<crate::policy::server::StoreError> for RunError {
    fn from(e: crate::policy::server::StoreError) -> Self {
        tracing::error!(error = %e, "policy store error while creating a run");
        RunError::Internal
    }
}

// ---------------------------------------------------------------------------------------------
// Input newtypes: parsed once at the edge.

/// The texts of a new run's blocks, numbered by `block_index` from 0: 1 to [`MAX_BLOCKS`]
/// blocks, none empty, none longer than [`MAX_BLOCK_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlocks(Vec<String>);

impl NewBlocks {
    /// `field` is how the caller names the input in errors (`blocks`, `text`, `--blocks`).
    pub fn parse(field: &str, texts: Vec<String>) -> Result<NewBlocks, RunError> {
        if texts.is_empty() {
            return Err(RunError::invalid(field, "needs at least one block of text"));
        }
        if texts.len() > MAX_BLOCKS {
            return Err(RunError::invalid(field, format!("holds {} blocks; at most {MAX_BLOCKS} are allowed", texts.len())));
        }
        for (i, t) in texts.iter().enumerate() {
            if t.trim().is_empty() {
                return Err(RunError::invalid(&format!("{field}[{i}]"), "is empty"));
            }
            if t.contains('\0') {
                return Err(RunError::invalid(&format!("{field}[{i}]"), "contains a NUL character, which cannot be stored"));
            }
            let n = t.chars().count();
            if n > MAX_BLOCK_CHARS {
                return Err(RunError::invalid(
                    &format!("{field}[{i}]"),
                    format!("has {n} characters; at most {MAX_BLOCK_CHARS} are allowed"),
                ));
            }
        }
        Ok(NewBlocks(texts))
    }

    /// One block per paragraph of pasted text.
    pub fn from_paragraphs(field: &str, text: &str) -> Result<NewBlocks, RunError> {
        NewBlocks::parse(field, super::snapshot::paragraphs(text))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A worker's name as it appears in `claimed_by`: 1 to 64 of `A-Z a-z 0-9 . _ - : @`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerName(String);

impl WorkerName {
    pub fn parse(raw: &str) -> Result<WorkerName, RunError> {
        let ok = (1..=64).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@'));
        if ok {
            Ok(WorkerName(raw.to_string()))
        } else {
            Err(RunError::invalid("worker", "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-', ':' or '@'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a claim holds its blocks before another worker may take them.
pub fn parse_lease(seconds: Option<i64>) -> Result<Duration, RunError> {
    match seconds {
        None => Ok(DEFAULT_LEASE),
        Some(s) if (MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&s) => Ok(Duration::from_secs(s as u64)),
        Some(s) => Err(RunError::invalid(
            "lease_seconds",
            format!("must be an integer from {MIN_LEASE_SECS} to {MAX_LEASE_SECS}, got {s}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Creation

/// Who creates a run: a signed-in user, a worker token or a CLI operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creator {
    pub user_id: Option<i64>,
    pub label: String,
}

impl Creator {
    pub fn user(u: &AuthUser) -> Creator {
        Creator { user_id: Some(u.id), label: u.email.clone() }
    }

    pub fn token(name: &str) -> Creator {
        Creator { user_id: None, label: format!("token:{name}") }
    }

    pub fn cli() -> Creator {
        Creator { user_id: None, label: crate::policy::server::Actor::cli().email }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedRun {
    pub id: i64,
    pub snapshot_sha256: String,
    pub policy_revision: i64,
    pub block_count: i64,
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Rows per multi-row INSERT: 5 parameters each, well under both backends' limits.
const INSERT_CHUNK: usize = 500;

/// Creates a run with its blocks. The policy is resolved inside the transaction that inserts
/// the run, so the snapshot, its revision and the run are committed together or not at all.
pub async fn create_run(store: &PolicyStore, creator: &Creator, blocks: &NewBlocks) -> Result<CreatedRun, RunError> {
    let db = &store.db;
    let mut tx = db.begin_write().await?;
    if db.backend == Backend::Postgres {
        // Every read of the transaction sees one snapshot of the database, so the admin values
        // and the revision read by resolve_in belong together even while a superuser saves.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    }
    let (resolved, revision) = store.resolve_in(&mut tx).await?;
    let snapshot = Snapshot::capture(&resolved, revision);
    let text = serde_json::to_string(&snapshot).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise a policy snapshot");
        RunError::Internal
    })?;
    let sha = sha256_hex(&text);
    let now = format_ts(Utc::now());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO runs (created_by_user_id, created_by, created_at, status, policy_snapshot, snapshot_sha256, policy_revision, block_count)
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7) RETURNING id",
    )
    .bind(creator.user_id)
    .bind(&creator.label)
    .bind(&now)
    .bind(&text)
    .bind(&sha)
    .bind(revision)
    .bind(blocks.len() as i64)
    .fetch_one(&mut *tx)
    .await?;

    for (chunk_no, chunk) in blocks.0.chunks(INSERT_CHUNK).enumerate() {
        let mut sql = String::from("INSERT INTO blocks (run_id, block_uid, block_index, text, state) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            let p = i * 4;
            sql.push_str(&format!("(${}, ${}, ${}, ${}, 'pending')", p + 1, p + 2, p + 3, p + 4));
        }
        let mut q = sqlx::query(&sql);
        for (i, text) in chunk.iter().enumerate() {
            let index = (chunk_no * INSERT_CHUNK + i) as i64;
            q = q.bind(id).bind(block_uid(id, index)).bind(index).bind(text.clone());
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    tracing::info!(run = id, by = %creator.label, blocks = blocks.len(), revision, "run created");
    Ok(CreatedRun { id, snapshot_sha256: sha, policy_revision: revision, block_count: blocks.len() as i64 })
}

/// A block's uid: stable, unique per run and independent of the claim order.
fn block_uid(run_id: i64, index: i64) -> String {
    format!("r{run_id}-b{index}")
}

// ---------------------------------------------------------------------------------------------
// The snapshot

/// A run's snapshot as stored: the exact text, its SHA-256 and the parsed form.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    pub run_id: i64,
    pub text: String,
    pub sha256: String,
    pub snapshot: Snapshot,
}

fn parse_snapshot(run_id: i64, text: &str) -> Result<Snapshot, RunError> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(run = run_id, error = %e, "a stored policy snapshot does not parse");
        RunError::Internal
    })
}

fn no_run(run_id: i64) -> RunError {
    RunError::NotFound(format!("no run {run_id}"))
}

pub async fn snapshot(db: &Db, run_id: i64) -> Result<StoredSnapshot, RunError> {
    let row = sqlx::query("SELECT policy_snapshot, snapshot_sha256 FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| no_run(run_id))?;
    let text: String = row.try_get("policy_snapshot")?;
    let snapshot = parse_snapshot(run_id, &text)?;
    Ok(StoredSnapshot { run_id, sha256: row.try_get("snapshot_sha256")?, text, snapshot })
}

// ---------------------------------------------------------------------------------------------
// Claims

/// One claimed block, as the worker gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedBlock {
    pub block_uid: String,
    pub block_index: i64,
    pub text: String,
    /// Which claim of this block this is (1 for the first); completing or failing it names it.
    pub attempt: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub run_id: i64,
    /// The snapshot's `worker.claim_batch_size`: the most blocks one claim returns.
    pub batch_size: i64,
    pub blocks: Vec<ClaimedBlock>,
    pub lease_expires_at: String,
    pub snapshot_sha256: String,
    /// True once every block is done or failed: nothing will ever be claimable again.
    pub finished: bool,
}

struct RunRow {
    snapshot: Snapshot,
    sha256: String,
}

async fn run_row(tx: &mut sqlx::Transaction<'static, sqlx::Any>, run_id: i64) -> Result<RunRow, RunError> {
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

/// Claims the next batch of a run's blocks for `worker`: at most the snapshot's
/// `worker.claim_batch_size`, in `block_index` order as the snapshot's `worker.claim_ordering`
/// says. Pending blocks and blocks whose lease has expired are claimable; an expired block on
/// its last attempt is marked failed instead. Two workers never get the same block: on
/// PostgreSQL the rows are locked with `FOR UPDATE SKIP LOCKED`, on SQLite the whole claim is
/// one write transaction.
pub async fn claim(db: &Db, run_id: i64, worker: &WorkerName, lease: Duration, now: DateTime<Utc>) -> Result<Claim, RunError> {
    let mut tx = db.begin_write().await?;
    let run = run_row(&mut tx, run_id).await?;
    let batch_size = run.snapshot.claim_batch_size();
    let max_attempts = run.snapshot.max_retries() + 1;
    let order = if run.snapshot.claim_descending() { "DESC" } else { "ASC" };
    let lock = if db.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let now_text = format_ts(now);
    let lease = chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(MAX_LEASE_SECS));
    let expires = format_ts(now.checked_add_signed(lease).unwrap_or(now));

    // A worker died holding the last allowed attempt: the block is finished, as failed.
    let expired: Vec<AnyRow> = sqlx::query(
        "UPDATE blocks SET state = 'failed', lease_expires_at = NULL, finished_at = $2,
             error = 'the lease expired on the last allowed attempt'
         WHERE run_id = $1 AND state = 'claimed' AND lease_expires_at < $2 AND attempts >= $3
         RETURNING block_uid",
    )
    .bind(run_id)
    .bind(&now_text)
    .bind(max_attempts)
    .fetch_all(&mut *tx)
    .await?;
    if !expired.is_empty() {
        count_finished(&mut tx, run_id, 0, expired.len() as i64).await?;
    }

    let sql = format!(
        "UPDATE blocks SET state = 'claimed', claimed_by = $2, claimed_at = $3, lease_expires_at = $4,
             attempts = attempts + 1
         WHERE (run_id, block_uid) IN (
             SELECT run_id, block_uid FROM blocks
             WHERE run_id = $1 AND (state = 'pending' OR (state = 'claimed' AND lease_expires_at < $3))
             ORDER BY block_index {order}
             LIMIT $5{lock})
         RETURNING block_uid, block_index, text, attempts"
    );
    let rows = sqlx::query(&sql)
        .bind(run_id)
        .bind(worker.as_str())
        .bind(&now_text)
        .bind(&expires)
        .bind(batch_size)
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
    if !blocks.is_empty() {
        sqlx::query("UPDATE runs SET status = 'running' WHERE id = $1 AND status = 'pending'")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
    }
    let counts = sqlx::query("SELECT block_count, blocks_done, blocks_failed FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await?;
    let finished = counts.try_get::<i64, _>("blocks_done")? + counts.try_get::<i64, _>("blocks_failed")?
        >= counts.try_get::<i64, _>("block_count")?;
    tx.commit().await?;
    Ok(Claim { run_id, batch_size, blocks, lease_expires_at: expires, snapshot_sha256: run.sha256, finished })
}

/// What became of a block after a completion or a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutcome {
    pub block_uid: String,
    /// `done`, `pending` (to be retried) or `failed` (no retries left).
    pub state: String,
    pub attempts: i64,
}

/// Why a completion or failure matched no claim: no such block, or a claim not held.
async fn not_held(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: i64,
    uid: &str,
    worker: &WorkerName,
    attempt: i64,
) -> Result<RunError, RunError> {
    let row = sqlx::query("SELECT state, claimed_by, attempts FROM blocks WHERE run_id = $1 AND block_uid = $2")
        .bind(run_id)
        .bind(uid)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        None => RunError::NotFound(format!("no block {uid} in run {run_id}")),
        Some(r) => {
            let state: String = r.try_get("state")?;
            let by: Option<String> = r.try_get("claimed_by")?;
            let attempts: i64 = r.try_get("attempts")?;
            RunError::Conflict(format!(
                "block {uid} is not claimed by {} at attempt {attempt} (state {state}, attempt {attempts}, held by {})",
                worker.as_str(),
                by.as_deref().unwrap_or("nobody")
            ))
        }
    })
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), RunError> {
    if text.contains('\0') {
        return Err(RunError::invalid(field, "contains a NUL character, which cannot be stored"));
    }
    let n = text.chars().count();
    if n > max {
        return Err(RunError::invalid(field, format!("has {n} characters; at most {max} are allowed")));
    }
    Ok(())
}

/// Stores a claimed block's result. Only the worker holding the claim at `attempt` may.
pub async fn complete(
    db: &Db,
    run_id: i64,
    uid: &str,
    worker: &WorkerName,
    attempt: i64,
    result: &str,
) -> Result<BlockOutcome, RunError> {
    check_text("result", result, MAX_RESULT_CHARS)?;
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE blocks SET state = 'done', result = $5, error = NULL, lease_expires_at = NULL, finished_at = $6
         WHERE run_id = $1 AND block_uid = $2 AND state = 'claimed' AND claimed_by = $3 AND attempts = $4",
    )
    .bind(run_id)
    .bind(uid)
    .bind(worker.as_str())
    .bind(attempt)
    .bind(result)
    .bind(format_ts(Utc::now()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        let e = not_held(&mut tx, run_id, uid, worker, attempt).await?;
        tx.rollback().await?;
        return Err(e);
    }
    count_finished(&mut tx, run_id, 1, 0).await?;
    tx.commit().await?;
    Ok(BlockOutcome { block_uid: uid.to_string(), state: "done".into(), attempts: attempt })
}

/// Records a failed attempt. The block is claimable again until it has been tried
/// 1 + the snapshot's `worker.max_retries` times; then it is failed for good.
pub async fn fail(
    db: &Db,
    run_id: i64,
    uid: &str,
    worker: &WorkerName,
    attempt: i64,
    error: &str,
) -> Result<BlockOutcome, RunError> {
    check_text("error", error, MAX_ERROR_CHARS)?;
    let mut tx = db.begin_write().await?;
    let run = run_row(&mut tx, run_id).await?;
    let max_attempts = run.snapshot.max_retries() + 1;
    let row = sqlx::query(
        "UPDATE blocks SET
             state = CASE WHEN attempts >= $5 THEN 'failed' ELSE 'pending' END,
             claimed_by = CASE WHEN attempts >= $5 THEN claimed_by ELSE NULL END,
             finished_at = CASE WHEN attempts >= $5 THEN $7 ELSE NULL END,
             lease_expires_at = NULL,
             error = $6
         WHERE run_id = $1 AND block_uid = $2 AND state = 'claimed' AND claimed_by = $3 AND attempts = $4
         RETURNING state",
    )
    .bind(run_id)
    .bind(uid)
    .bind(worker.as_str())
    .bind(attempt)
    .bind(max_attempts)
    .bind(error)
    .bind(format_ts(Utc::now()))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        let e = not_held(&mut tx, run_id, uid, worker, attempt).await?;
        tx.rollback().await?;
        return Err(e);
    };
    let state: String = row.try_get("state")?;
    if state == "failed" {
        count_finished(&mut tx, run_id, 0, 1).await?;
    }
    tx.commit().await?;
    Ok(BlockOutcome { block_uid: uid.to_string(), state, attempts: attempt })
}

// ---------------------------------------------------------------------------------------------
// Pages

const SUMMARY_COLUMNS: &str =
    "id, created_by, created_at, status, policy_revision, block_count, blocks_done, blocks_failed";

fn summary_from_row(r: &AnyRow) -> Result<RunSummary, sqlx::Error> {
    Ok(RunSummary {
        id: r.try_get("id")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        status: r.try_get("status")?,
        policy_revision: r.try_get("policy_revision")?,
        block_count: r.try_get("block_count")?,
        blocks_done: r.try_get("blocks_done")?,
        blocks_failed: r.try_get("blocks_failed")?,
    })
}

/// The runs `viewer` may see, newest first: a member's own, or all for a superuser.
pub async fn list_runs(db: &Db, viewer: &AuthUser, limit: i64) -> Result<Vec<RunSummary>, RunError> {
    let limit = limit.clamp(1, 1000);
    let rows = if viewer.role == Role::Superuser {
        sqlx::query(&format!("SELECT {SUMMARY_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
    } else {
        sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM runs WHERE created_by_user_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(viewer.id)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?
    };
    Ok(rows.iter().map(summary_from_row).collect::<Result<_, _>>()?)
}

/// One run for its page: progress, and every snapshot key beside today's baseline. A member
/// asking for someone else's run gets the same answer as for a run that does not exist.
pub async fn run_detail(store: &PolicyStore, viewer: &AuthUser, run_id: i64) -> Result<RunDetail, RunError> {
    let db = &store.db;
    let row = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS}, created_by_user_id, policy_snapshot, snapshot_sha256 FROM runs WHERE id = $1"
    ))
    .bind(run_id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| no_run(run_id))?;
    let owner: Option<i64> = row.try_get("created_by_user_id")?;
    if viewer.role != Role::Superuser && owner != Some(viewer.id) {
        return Err(no_run(run_id));
    }
    let summary = summary_from_row(&row)?;
    let text: String = row.try_get("policy_snapshot")?;
    let snapshot = parse_snapshot(run_id, &text)?;

    let mut counts = BlockCounts::default();
    let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM blocks WHERE run_id = $1 GROUP BY state")
        .bind(run_id)
        .fetch_all(&db.pool)
        .await?;
    for r in rows {
        let n: i64 = r.try_get("n")?;
        match r.try_get::<String, _>("state")?.as_str() {
            "pending" => counts.pending = n,
            "claimed" => counts.claimed = n,
            "done" => counts.done = n,
            "failed" => counts.failed = n,
            _ => {}
        }
    }

    let today = store.resolve().await?;
    let keys = snapshot
        .keys
        .iter()
        .map(|k| {
            let now = today.iter().find(|r| r.key == k.key);
            let drift = now.map(|r| r.value != k.value).unwrap_or(false);
            SnapshotKeyView {
                key: k.key.clone(),
                label: spec(&k.key).map(|s| s.label.to_string()).unwrap_or_default(),
                provenance: provenance(&k.value, Layer::RunSnapshot),
                provenance_short: format!(
                    "effective={} (source={})",
                    truncate(&canonical_json(&k.value), 60),
                    Layer::RunSnapshot
                ),
                captured_from: k.captured_from,
                admin_version: k.admin_version,
                baseline: now.map(|r| r.provenance_short()),
                drift,
            }
        })
        .collect();
    Ok(RunDetail {
        summary,
        counts,
        snapshot_sha256: row.try_get("snapshot_sha256")?,
        keys,
    })
}
