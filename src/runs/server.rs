//! Runs on the server: creation with its snapshot in one transaction, the snapshot read, and
//! the run list and run page. Plain async functions over the pool, called by the server
//! functions, the worker API, the CLI and the tests. Claims are in `claims.rs`.

use chrono::Utc;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::input::NewBlocks;
use super::snapshot::Snapshot;
use super::types::{
    BlockCounts, BlockState, BlockView, CreatedRun, RunDetail, RunFileView, RunProgress, RunStatus, RunSummary,
    SnapshotKeyView, WorkerSeen,
};
use super::upload::{check_sizes, extract_files, FileBlocks, UploadLimits, UploadedFile};
use crate::auth::types::{AuthUser, Role};
use crate::config::Backend;
use crate::db::{format_ts, parse_stored, sha256_hex, Db};
use crate::error::AppError;
use crate::policy::registry::{spec, Layer};
use crate::policy::resolve::provenance;
use crate::policy::store::{Actor, PolicyStore};
use crate::policy::value::{canonical_json, truncate};

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
        Creator { user_id: None, label: Actor::cli().email }
    }
}

/// Rows per multi-row INSERT: 6 parameters each, well under both backends' limits.
const INSERT_CHUNK: usize = 500;

/// Creates a run with its blocks. The policy is resolved inside the transaction that inserts
/// the run, so the snapshot, its revision and the run are committed together or not at all.
pub async fn create_run(store: &PolicyStore, creator: &Creator, blocks: &NewBlocks) -> Result<CreatedRun, AppError> {
    create_run_with_files(store, creator, blocks, &[]).await
}

/// Creates a run from uploaded files: checks the upload against today's upload keys (so a
/// refused upload is not extracted), extracts every file's blocks off the async threads, and
/// creates the run, where the check is made again against the snapshot's own values.
pub async fn create_run_from_upload(
    store: &PolicyStore,
    creator: &Creator,
    files: Vec<UploadedFile>,
) -> Result<CreatedRun, AppError> {
    check_sizes(&files)?;
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    UploadLimits::from_resolved(&store.resolve().await?).check(&names)?;
    let extracted = extract_files(files).await?;
    let blocks = NewBlocks::from_files(&extracted)?;
    create_run_with_files(store, creator, &blocks, &extracted).await
}

/// Creates a run; with `files`, the upload keys of the policy the snapshot is taken from must
/// admit them, or nothing is written.
pub async fn create_run_with_files(
    store: &PolicyStore,
    creator: &Creator,
    blocks: &NewBlocks,
    files: &[FileBlocks],
) -> Result<CreatedRun, AppError> {
    let db = &store.db;
    let mut tx = db.begin_write().await?;
    if db.backend == Backend::Postgres {
        // Every read of the transaction sees one snapshot of the database, so the admin values
        // and the revision read by resolve_in belong together even while a superuser saves.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    }
    let (resolved, revision) = store.resolve_in(&mut tx).await?;
    if !files.is_empty() {
        let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        UploadLimits::from_resolved(&resolved).check(&names)?;
    }
    let snapshot = Snapshot::capture(&resolved, revision);
    let text = serde_json::to_string(&snapshot).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise a policy snapshot");
        AppError::internal()
    })?;
    let sha = sha256_hex(&text);
    let now = format_ts(Utc::now());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO runs (created_by_user_id, created_by, created_at, status, policy_snapshot, snapshot_sha256, policy_revision, block_count)
         VALUES ($1, $2, $3, $8, $4, $5, $6, $7) RETURNING id",
    )
    .bind(creator.user_id)
    .bind(&creator.label)
    .bind(&now)
    .bind(&text)
    .bind(&sha)
    .bind(revision)
    .bind(blocks.len() as i64)
    .bind(RunStatus::Pending.as_str())
    .fetch_one(&mut *tx)
    .await?;

    for (chunk_no, chunk) in blocks.texts().chunks(INSERT_CHUNK).enumerate() {
        let mut sql = String::from(
            "INSERT INTO blocks (run_id, block_uid, block_index, text, file_index, file_position, state) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            let p = i * 6;
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, '{}')",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                BlockState::Pending
            ));
        }
        let mut q = sqlx::query(&sql);
        for (i, text) in chunk.iter().enumerate() {
            let index = chunk_no * INSERT_CHUNK + i;
            let source = blocks.source(index);
            q = q
                .bind(id)
                .bind(block_uid(id, index as i64))
                .bind(index as i64)
                .bind(text.clone())
                .bind(source.map(|s| s.0))
                .bind(source.map(|s| s.1));
        }
        q.execute(&mut *tx).await?;
    }
    for (i, f) in files.iter().enumerate() {
        sqlx::query(
            "INSERT INTO run_files (run_id, file_index, file_name, extension, size_bytes, sha256, block_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(i as i64)
        .bind(&f.name)
        .bind(&f.extension)
        .bind(f.size_bytes)
        .bind(&f.sha256)
        .bind(f.blocks.len() as i64)
        .execute(&mut *tx)
        .await?;
    }
    let payload = serde_json::json!({
        "run": id, "created_by": creator.label, "blocks": blocks.len(), "files": files.len(),
        "policy_revision": revision, "snapshot_sha256": sha,
    });
    crate::policy::webhooks::enqueue(&mut tx, "run.created", &payload).await?;
    tx.commit().await?;
    tracing::info!(run = id, by = %creator.label, blocks = blocks.len(), revision, "run created");
    store.db.metrics.inc("runs_created_total", &[]);
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

pub(super) fn parse_snapshot(run_id: i64, text: &str) -> Result<Snapshot, AppError> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(run = run_id, error = %e, "a stored policy snapshot does not parse");
        AppError::internal()
    })
}

pub(super) fn no_run(run_id: i64) -> AppError {
    AppError::NotFound(format!("no run {run_id}"))
}

pub async fn snapshot(db: &Db, run_id: i64) -> Result<StoredSnapshot, AppError> {
    let row = sqlx::query("SELECT policy_snapshot, snapshot_sha256 FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| no_run(run_id))?;
    let text: String = row.try_get("policy_snapshot")?;
    let snapshot = parse_snapshot(run_id, &text)?;
    Ok(StoredSnapshot { run_id, sha256: row.try_get("snapshot_sha256")?, text, snapshot })
}

/// The admin layer a run was created under: each key's value where the snapshot took it from
/// the admin layer; the other keys had no admin value then.
pub fn admin_layer_of(snapshot: &Snapshot) -> std::collections::HashMap<String, Option<serde_json::Value>> {
    snapshot.keys.iter().map(|k| (k.key.clone(), (k.captured_from == Layer::Admin).then(|| k.value.clone()))).collect()
}

/// Restores the admin layer a run was created under, as one change set audited as a restore
/// of the run's snapshot (keys with no admin value then are reset), or a change request when
/// it touches a key that needs review. `dry_run` gives the diff.
pub async fn restore_run_policy(
    store: &PolicyStore,
    actor: &Actor,
    run_id: i64,
    reason: Option<&str>,
    expected_revision: Option<i64>,
    dry_run: bool,
) -> Result<crate::policy::change_set::Proposal, AppError> {
    let stored = snapshot(&store.db, run_id).await?;
    let targets = admin_layer_of(&stored.snapshot);
    let kind = crate::policy::change_set::ChangeSetKind::RestoreRun(run_id);
    store.restore(actor, &targets, kind, reason, expected_revision, dry_run).await
}

// ---------------------------------------------------------------------------------------------
// Pages

const SUMMARY_COLUMNS: &str =
    "id, created_by, created_at, status, policy_revision, block_count, blocks_done, blocks_failed";

fn summary_from_row(r: &AnyRow) -> Result<RunSummary, AppError> {
    let status = parse_stored("runs.status", &r.try_get::<String, _>("status")?, RunStatus::parse)?;
    Ok(RunSummary {
        id: r.try_get("id")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        status,
        policy_revision: r.try_get("policy_revision")?,
        block_count: r.try_get("block_count")?,
        blocks_done: r.try_get("blocks_done")?,
        blocks_failed: r.try_get("blocks_failed")?,
    })
}

/// The runs `viewer` may see, newest first: a member's own, or all for a superuser.
pub async fn list_runs(db: &Db, viewer: &AuthUser, limit: i64) -> Result<Vec<RunSummary>, AppError> {
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
    rows.iter().map(summary_from_row).collect()
}

/// One run for its page: progress, and every snapshot key beside today's baseline. A member
/// asking for someone else's run gets the same answer as for a run that does not exist.
pub async fn run_detail(store: &PolicyStore, viewer: &AuthUser, run_id: i64) -> Result<RunDetail, AppError> {
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

    let counts = block_counts(db, run_id).await?;

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
    let files = sqlx::query(
        "SELECT file_name, extension, size_bytes, sha256, block_count FROM run_files WHERE run_id = $1 ORDER BY file_index",
    )
    .bind(run_id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(RunFileView {
            name: r.try_get("file_name")?,
            extension: r.try_get("extension")?,
            size_bytes: r.try_get("size_bytes")?,
            sha256: r.try_get("sha256")?,
            block_count: r.try_get("block_count")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let blocks = block_views(db, run_id, &files).await?;
    Ok(RunDetail {
        summary,
        counts,
        snapshot_sha256: row.try_get("snapshot_sha256")?,
        keys,
        files,
        blocks,
        events: super::events::summary(db, run_id).await?,
        // Token names are the operators' labels: members see the workers by name only.
        workers: super::events::workers(db, run_id)
            .await?
            .into_iter()
            .map(|w| if viewer.role == Role::Superuser { w } else { WorkerSeen { token: String::new(), ..w } })
            .collect(),
    })
}

/// A run's blocks by state.
async fn block_counts(db: &Db, run_id: i64) -> Result<BlockCounts, AppError> {
    let mut counts = BlockCounts::default();
    let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM blocks WHERE run_id = $1 GROUP BY state")
        .bind(run_id)
        .fetch_all(&db.pool)
        .await?;
    for r in rows {
        let n: i64 = r.try_get("n")?;
        match BlockState::parse(&r.try_get::<String, _>("state")?) {
            Some(BlockState::Pending) => counts.pending = n,
            Some(BlockState::Claimed) => counts.claimed = n,
            Some(BlockState::Done) => counts.done = n,
            Some(BlockState::Failed) => counts.failed = n,
            None => {}
        }
    }
    Ok(counts)
}

/// A run's progress for the worker API: its counts, worker reports and the workers seen.
pub async fn run_progress(db: &Db, run_id: i64) -> Result<RunProgress, AppError> {
    let row = sqlx::query(&format!("SELECT {SUMMARY_COLUMNS}, snapshot_sha256 FROM runs WHERE id = $1"))
        .bind(run_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| no_run(run_id))?;
    Ok(RunProgress {
        run: summary_from_row(&row)?,
        counts: block_counts(db, run_id).await?,
        snapshot_sha256: row.try_get("snapshot_sha256")?,
        events: super::events::summary(db, run_id).await?,
        workers: super::events::workers(db, run_id).await?,
    })
}

/// The first [`BLOCKS_SHOWN`] blocks of a run, for its page.
pub const BLOCKS_SHOWN: i64 = 200;

async fn block_views(db: &Db, run_id: i64, files: &[RunFileView]) -> Result<Vec<BlockView>, AppError> {
    let rows = sqlx::query(
        "SELECT block_uid, block_index, substr(text, 1, 121) AS text, state, attempts, file_index, file_position,
             result_model, result_temperature, result_max_tokens FROM blocks
         WHERE run_id = $1 ORDER BY block_index LIMIT $2",
    )
    .bind(run_id)
    .bind(BLOCKS_SHOWN)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let file_index: Option<i64> = r.try_get("file_index")?;
            let text: String = r.try_get("text")?;
            let model: Option<String> = r.try_get("result_model")?;
            let temperature: Option<String> = r.try_get("result_temperature")?;
            let max_tokens: Option<i64> = r.try_get("result_max_tokens")?;
            let produced_by = model.map(|m| {
                format!(
                    "{m}, temperature {}, max tokens {}",
                    temperature.unwrap_or_default(),
                    max_tokens.map(|n| n.to_string()).unwrap_or_default()
                )
            });
            Ok(BlockView {
                produced_by,
                block_uid: r.try_get("block_uid")?,
                block_index: r.try_get("block_index")?,
                state: parse_stored("blocks.state", &r.try_get::<String, _>("state")?, BlockState::parse)?,
                attempts: r.try_get("attempts")?,
                file: file_index.and_then(|i| files.get(i as usize)).map(|f| f.name.clone()),
                position: r.try_get("file_position")?,
                preview: truncate(&text, 120),
            })
        })
        .collect()
}
