//! What the run pages and the worker API send: wire types shared by the server, the wasm bundle
//! and the reference worker.

use serde::{Deserialize, Serialize};

use crate::policy::registry::Layer;

/// The most bytes one uploaded file may hold (the page checks before sending).
pub const MAX_FILE_BYTES: usize = 10 << 20;
/// The most bytes of all the files of one upload together.
pub const MAX_UPLOAD_BYTES: usize = 50 << 20;

/// Where a run is: no block claimed yet, some claimed, or every block finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Pending,
    Running,
    /// Every block done.
    Done,
    /// Every block finished, at least one failed.
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [RunStatus::Pending, RunStatus::Running, RunStatus::Done, RunStatus::Failed]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a block is: waiting, held by a worker under a lease, or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockState {
    Pending,
    Claimed,
    Done,
    /// No retries left.
    Failed,
}

impl BlockState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockState::Pending => "pending",
            BlockState::Claimed => "claimed",
            BlockState::Done => "done",
            BlockState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<BlockState> {
        [BlockState::Pending, BlockState::Claimed, BlockState::Done, BlockState::Failed]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

impl std::fmt::Display for BlockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: i64,
    pub created_by: String,
    pub created_at: String,
    pub status: RunStatus,
    pub policy_revision: i64,
    pub block_count: i64,
    pub blocks_done: i64,
    pub blocks_failed: i64,
}

/// A run's blocks by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCounts {
    pub pending: i64,
    pub claimed: i64,
    pub done: i64,
    pub failed: i64,
}

/// One snapshot key on the run page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotKeyView {
    pub key: String,
    pub label: String,
    /// `effective=<value> (source=run_snapshot)`, whole.
    pub provenance: String,
    /// The same with the value cut to 60 characters, for the page.
    pub provenance_short: String,
    /// The layer the value came from when the run was created.
    pub captured_from: Layer,
    pub admin_version: i64,
    /// Today's baseline as `effective=<value> (source=<layer>)` (cut to 60 characters).
    pub baseline: Option<String>,
    /// True when today's baseline differs from the snapshot.
    pub drift: bool,
}

/// A file a run was created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFileView {
    pub name: String,
    pub extension: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub block_count: i64,
}

/// One block on the run page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    pub block_uid: String,
    pub block_index: i64,
    pub state: BlockState,
    pub attempts: i64,
    /// The file it was extracted from, and its position there (paragraph, row or page).
    pub file: Option<String>,
    pub position: Option<i64>,
    /// The start of its text.
    pub preview: String,
    /// For a result: the model, temperature and max tokens the run's snapshot gave it.
    pub produced_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetail {
    pub summary: RunSummary,
    pub counts: BlockCounts,
    pub snapshot_sha256: String,
    pub keys: Vec<SnapshotKeyView>,
    /// The uploaded files, in upload order (none for pasted text).
    pub files: Vec<RunFileView>,
    /// The first blocks, in block_index order.
    pub blocks: Vec<BlockView>,
    /// Worker reports by code, warnings first.
    pub events: Vec<EventSummary>,
    /// Workers seen on the run, most recent first.
    pub workers: Vec<WorkerSeen>,
}

/// A run just created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedRun {
    pub id: i64,
    pub snapshot_sha256: String,
    pub policy_revision: i64,
    pub block_count: i64,
}

/// One claimed block, as the worker gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedBlock {
    pub block_uid: String,
    pub block_index: i64,
    pub text: String,
    /// Which claim of this block this is (1 for the first); completing or failing it names it.
    pub attempt: i64,
}

/// Blocks of a claim packed into one model call (when the snapshot enables batching).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Names the batch when it is completed.
    pub batch_id: String,
    /// Its blocks, in claim order.
    pub block_uids: Vec<String>,
    /// The blocks' estimated tokens together (characters / 4, rounded up, per block).
    pub estimated_tokens: i64,
    /// The most a batch may hold: models.platform_default_max_tokens × (1 − worker.batching.safety_margin).
    pub budget: i64,
}

/// What became of one block of a batch completion: `state` None when its lease had expired
/// and another claim holds it now (the result was not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub block_uid: String,
    pub state: Option<BlockState>,
    pub attempts: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub run_id: i64,
    /// The snapshot's `worker.claim_batch_size`: the most blocks one claim returns.
    pub batch_size: i64,
    pub blocks: Vec<ClaimedBlock>,
    /// The blocks packed into model calls, when the snapshot enables batching (else empty:
    /// each block is completed on its own).
    #[serde(default)]
    pub batches: Vec<Batch>,
    pub lease_expires_at: String,
    pub snapshot_sha256: String,
    /// True once every block is done or failed: nothing will ever be claimable again.
    pub finished: bool,
}

/// What became of a block after a completion or a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutcome {
    pub block_uid: String,
    /// `done`, `pending` (to be retried) or `failed` (no retries left).
    pub state: BlockState,
    pub attempts: i64,
}

/// How much a worker's report matters: neither ever fails a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventLevel {
    Info,
    Warning,
}

impl EventLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            EventLevel::Info => "info",
            EventLevel::Warning => "warning",
        }
    }

    pub fn parse(s: &str) -> Option<EventLevel> {
        [EventLevel::Info, EventLevel::Warning].into_iter().find(|l| l.as_str() == s)
    }
}

/// Events of one code on a run: how many, and the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSummary {
    pub code: String,
    pub level: EventLevel,
    pub count: i64,
    pub latest_message: String,
    pub latest_at: String,
    pub latest_block_uid: Option<String>,
    pub latest_worker: String,
}

/// A worker seen on a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSeen {
    pub worker: String,
    pub token: String,
    pub first_seen_at: String,
    pub last_seen_at: String,
}

/// A run a worker holds claims in, on the fleet page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRun {
    pub run_id: i64,
    pub status: RunStatus,
    /// The policy revision the run's snapshot was taken at.
    pub policy_revision: i64,
    /// Blocks this worker holds under a live lease.
    pub held_blocks: i64,
    /// Keys whose snapshot value differs from today's baseline (empty: the run follows it).
    pub differing_keys: Vec<String>,
}

/// A worker seen in the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetWorker {
    pub worker: String,
    pub token: String,
    pub last_seen_at: String,
    pub runs: Vec<FleetRun>,
}

/// The fleet page: workers seen since `since`, and today's policy revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    pub since: String,
    pub baseline_revision: i64,
    pub workers: Vec<FleetWorker>,
}

/// A run's progress as the worker API gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    pub run: RunSummary,
    pub counts: BlockCounts,
    pub snapshot_sha256: String,
    /// Worker reports by code, warnings first.
    pub events: Vec<EventSummary>,
    /// Workers seen on the run, most recent first.
    pub workers: Vec<WorkerSeen>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_their_stored_names() {
        for s in [RunStatus::Pending, RunStatus::Running, RunStatus::Done, RunStatus::Failed] {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for b in [BlockState::Pending, BlockState::Claimed, BlockState::Done, BlockState::Failed] {
            assert_eq!(BlockState::parse(b.as_str()), Some(b));
            assert_eq!(serde_json::to_value(b).unwrap(), serde_json::json!(b.as_str()));
        }
        assert_eq!(RunStatus::parse("Done"), None);
    }
}
