//! What the run pages and the worker API send: wire types shared by the server, the wasm bundle
//! and the reference worker.

use serde::{Deserialize, Serialize};

use crate::policy::registry::Layer;

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

/// What became of a block after a completion or a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutcome {
    pub block_uid: String,
    /// `done`, `pending` (to be retried) or `failed` (no retries left).
    pub state: BlockState,
    pub attempts: i64,
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
