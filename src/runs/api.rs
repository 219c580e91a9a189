//! Server functions of runs. Each is a public HTTP endpoint (POST under `/api/`): it checks the
//! caller first, parses, calls one `server::` function and returns its error as it is.

use leptos::prelude::*;

use super::types::{Fleet, RunDetail, RunSummary};
use crate::error::AppError;

/// The runs the caller may see, newest first (a member's own; every run for a superuser).
#[server(endpoint = "list_runs")]
pub async fn list_runs() -> Result<Vec<RunSummary>, AppError> {
    let user = crate::auth::guard::require_user()?;
    let db = crate::context::server_context::<crate::db::Db>()?;
    super::server::list_runs(&db, &user, 200).await
}

/// One run with its progress and its snapshot beside today's baseline.
#[server(endpoint = "get_run")]
pub async fn get_run(id: i64) -> Result<RunDetail, AppError> {
    let user = crate::auth::guard::require_user()?;
    let store = crate::context::server_context::<crate::policy::store::PolicyStore>()?;
    super::server::run_detail(&store, &user, id).await
}

/// Creates a run from pasted text, one block per paragraph, and returns its id. The policy is
/// snapshotted in the transaction that inserts the run. A form posted without JavaScript is
/// sent on to the new run's page.
#[server(endpoint = "create_run")]
pub async fn create_run(text: String) -> Result<i64, AppError> {
    use super::input::NewBlocks;
    use super::server::{self, Creator};

    let user = crate::auth::guard::require_user()?;
    let store = crate::context::server_context::<crate::policy::store::PolicyStore>()?;
    let blocks = NewBlocks::from_paragraphs("text", &text)?;
    let run = server::create_run(&store, &Creator::user(&user), &blocks).await?;
    if crate::error::is_plain_form_post() {
        leptos_axum::redirect(&crate::paths::run_href(run.id));
    }
    Ok(run.id)
}

/// The fleet: workers seen in the last hour and the runs they hold claims in (superusers).
#[server(endpoint = "fleet")]
pub async fn fleet_status() -> Result<Fleet, AppError> {
    crate::auth::guard::require_superuser()?;
    let store = crate::context::server_context::<crate::policy::store::PolicyStore>()?;
    super::fleet::fleet(&store, store.db.now().await?).await
}
