//! Server functions of runs and the types they return. Each is a public HTTP endpoint (POST
//! under `/api/`): it checks the caller first, parses, calls one `server::` function and maps
//! the error.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::policy::Layer;

/// A run in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: i64,
    pub created_by: String,
    pub created_at: String,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetail {
    pub summary: RunSummary,
    pub counts: BlockCounts,
    pub snapshot_sha256: String,
    pub keys: Vec<SnapshotKeyView>,
}

#[cfg(feature = "ssr")]
fn run_error(e: super::server::RunError) -> ServerFnError {
    if !crate::auth::server::is_plain_form_post() {
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(e.status());
        }
    }
    ServerFnError::ServerError(e.to_string())
}

/// The runs the caller may see, newest first (a member's own; every run for a superuser).
#[server(endpoint = "list_runs")]
pub async fn list_runs() -> Result<Vec<RunSummary>, ServerFnError> {
    use crate::auth::server::{app_state, require_user};
    let user = require_user()?;
    let state = app_state()?;
    super::server::list_runs(&state.db, &user, 200).await.map_err(run_error)
}

/// One run with its progress and its snapshot beside today's baseline.
#[server(endpoint = "get_run")]
pub async fn get_run(id: i64) -> Result<RunDetail, ServerFnError> {
    use crate::auth::server::{app_state, require_user};
    let user = require_user()?;
    let state = app_state()?;
    super::server::run_detail(&state.policy, &user, id).await.map_err(run_error)
}

/// Creates a run from pasted text, one block per paragraph, and returns its id. The policy is
/// snapshotted in the transaction that inserts the run. A form posted without JavaScript is
/// sent on to the new run's page.
#[server(endpoint = "create_run")]
pub async fn create_run(text: String) -> Result<i64, ServerFnError> {
    use super::server::{self, Creator, NewBlocks};
    use crate::auth::server::{app_state, is_plain_form_post, require_user};
    let user = require_user()?;
    let state = app_state()?;
    let blocks = NewBlocks::from_paragraphs("text", &text).map_err(run_error)?;
    let run = server::create_run(&state.policy, &Creator::user(&user), &blocks).await.map_err(run_error)?;
    if is_plain_form_post() {
        leptos_axum::redirect(&super::run_href(run.id));
    }
    Ok(run.id)
}
