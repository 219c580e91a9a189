//! Server functions of the settings page. Each one is a public HTTP endpoint: it checks that the
//! caller is a superuser first, then calls the store. Expected failures (a validation error, a
//! conflict, a no-op) are data in the result, not errors.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::audit::{AuditFilter, AuditRow, Conflict};
use super::resolve::Resolved;

/// Everything the settings page shows: every key resolved (the nav marks keys not at their
/// default), and the recent history of the keys in the open category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyPage {
    pub resolved: Vec<Resolved>,
    pub history: Vec<(String, Vec<AuditRow>)>,
    pub revision: i64,
}

impl PolicyPage {
    pub fn resolved(&self, key: &str) -> Option<&Resolved> {
        self.resolved.iter().find(|r| r.key == key)
    }

    pub fn history(&self, key: &str) -> &[AuditRow] {
        self.history.iter().find(|(k, _)| k == key).map(|(_, rows)| rows.as_slice()).unwrap_or(&[])
    }
}

/// What a save, reset or revert did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SaveOutcome {
    Saved { key: String, version: i64 },
    Unchanged { key: String },
    Invalid { key: String, field: String, message: String },
    Conflict(Conflict),
}

impl SaveOutcome {
    pub fn key(&self) -> &str {
        match self {
            SaveOutcome::Saved { key, .. } | SaveOutcome::Unchanged { key } | SaveOutcome::Invalid { key, .. } => key,
            SaveOutcome::Conflict(c) => &c.key,
        }
    }
}

/// One page of the audit log, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub rows: Vec<AuditRow>,
    /// The id to pass as `before` for the next (older) page, when there is one.
    pub older: Option<i64>,
    pub error: Option<String>,
}

/// How many history rows each key shows beside its control.
pub const KEY_HISTORY_ROWS: i64 = 20;
/// Rows per page of the global audit log.
pub const AUDIT_PAGE_ROWS: i64 = 50;

#[server(endpoint = "settings_data")]
pub async fn settings_data(category: String) -> Result<PolicyPage, ServerFnError> {
    use crate::auth::server::{app_state, require_superuser};
    use crate::policy::registry::keys_in;
    use crate::settings::Category;

    require_superuser()?;
    let state = app_state()?;
    let store = &state.policy;
    let resolved = store.resolve().await.map_err(internal)?;
    let revision = store.revision().await.map_err(internal)?;
    let mut history = Vec::new();
    if let Some(cat) = Category::from_slug(&category) {
        for s in keys_in(cat) {
            let rows = store
                .history(&AuditFilter { key: Some(s.key.to_string()), limit: Some(KEY_HISTORY_ROWS), ..Default::default() })
                .await
                .map_err(internal)?;
            history.push((s.key.to_string(), rows));
        }
    }
    Ok(PolicyPage { resolved, history, revision })
}

/// Saves a key's admin value. `value` is the text of the form field (absent for an unchecked
/// toggle, which means `false`).
#[server(endpoint = "save_policy")]
pub async fn save_policy(
    key: String,
    value: Option<String>,
    expected_version: i64,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<SaveOutcome, ServerFnError> {
    use crate::auth::server::{app_state, require_superuser};
    use crate::policy::registry::{spec, Kind};

    let user = require_superuser()?;
    let state = app_state()?;
    let is_bool = spec(&key).is_some_and(|s| s.kind == Kind::Bool);
    let raw = match value {
        Some(v) if is_bool => if v == "true" || v == "on" { "true".to_string() } else { v },
        Some(v) => v,
        None if is_bool => "false".to_string(),
        None => String::new(),
    };
    let actor = super::server::Actor::user(user.id, user.email);
    let result = state.policy.update_text(&actor, &key, &raw, expected_version, reason.as_deref()).await;
    finish(key, result, return_to)
}

/// Removes a key's admin value, so it falls back to the inherited (env or default) value.
#[server(endpoint = "reset_policy")]
pub async fn reset_policy(
    key: String,
    expected_version: i64,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<SaveOutcome, ServerFnError> {
    use crate::auth::server::{app_state, require_superuser};

    let user = require_superuser()?;
    let state = app_state()?;
    let actor = super::server::Actor::user(user.id, user.email);
    let result = state.policy.reset(&actor, &key, expected_version, reason.as_deref()).await;
    finish(key, result, return_to)
}

/// Restores the value a key had after audit row `audit_id`.
#[server(endpoint = "revert_policy")]
pub async fn revert_policy(
    key: String,
    audit_id: i64,
    expected_version: i64,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<SaveOutcome, ServerFnError> {
    use crate::auth::server::{app_state, require_superuser};

    let user = require_superuser()?;
    let state = app_state()?;
    let actor = super::server::Actor::user(user.id, user.email);
    let result = state.policy.revert(&actor, &key, audit_id, expected_version, reason.as_deref()).await;
    finish(key, result, return_to)
}

/// The global audit log, filtered and paged.
#[server(endpoint = "audit_log")]
pub async fn audit_log(
    key: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
) -> Result<AuditPage, ServerFnError> {
    use crate::auth::server::{app_state, require_superuser};

    require_superuser()?;
    let state = app_state()?;
    let filter = audit_filter(key, actor, from, to, before, Some(AUDIT_PAGE_ROWS + 1));
    match state.policy.history(&filter).await {
        Ok(mut rows) => {
            let older = if rows.len() as i64 > AUDIT_PAGE_ROWS {
                rows.truncate(AUDIT_PAGE_ROWS as usize);
                rows.last().map(|r| r.id)
            } else {
                None
            };
            Ok(AuditPage { rows, older, error: None })
        }
        Err(super::server::StoreError::Invalid(e)) => Ok(AuditPage { rows: vec![], older: None, error: Some(e.to_string()) }),
        Err(e) => Err(internal(e)),
    }
}

/// Builds a filter from query-string style fields; empty fields are no filter.
pub fn audit_filter(
    key: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
) -> AuditFilter {
    let some = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    AuditFilter { key: some(key), actor: some(actor), from: some(from), to: some(to), before_id: before, limit }
}

#[cfg(feature = "ssr")]
fn internal(e: super::server::StoreError) -> ServerFnError {
    tracing::error!("settings server function failed: {e}");
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
    ServerFnError::ServerError("Internal error; the server log has the details.".into())
}

/// Turns a store result into the page's outcome. A form posted without JavaScript is sent back
/// to the page it came from, with the outcome in the query so it shows next to the field.
#[cfg(feature = "ssr")]
fn finish(
    key: String,
    result: Result<super::server::WriteOutcome, super::server::StoreError>,
    return_to: Option<String>,
) -> Result<SaveOutcome, ServerFnError> {
    use super::server::{StoreError, WriteOutcome};

    let outcome = match result {
        Ok(WriteOutcome::Changed { version, .. }) => SaveOutcome::Saved { key, version },
        Ok(WriteOutcome::Unchanged) => SaveOutcome::Unchanged { key },
        Err(StoreError::Invalid(e)) => SaveOutcome::Invalid { key, field: e.key.clone(), message: e.to_string() },
        Err(StoreError::NotFound(m)) => SaveOutcome::Invalid { key: key.clone(), field: key, message: m },
        Err(StoreError::Conflict(c)) => SaveOutcome::Conflict(c),
        Err(e @ StoreError::Internal(_)) => return Err(internal(e)),
    };
    if crate::auth::server::is_plain_form_post() {
        let back = crate::auth::server::safe_next(return_to.as_deref());
        let back = back.split(['?', '#']).next().unwrap_or_default().to_string();
        let (notice, message) = match &outcome {
            SaveOutcome::Saved { .. } => ("saved", String::new()),
            SaveOutcome::Unchanged { .. } => ("unchanged", String::new()),
            SaveOutcome::Invalid { message, .. } => ("error", message.clone()),
            SaveOutcome::Conflict(c) => {
                // The address must stay short: the value in the message is cut.
                let mut c = c.clone();
                c.current_value = c.current_value.map(|v| {
                    serde_json::Value::String(super::value::truncate(&super::value::canonical_json(&v), 120))
                });
                ("conflict", StoreError::Conflict(c).to_string())
            }
        };
        let key = outcome.key();
        leptos_axum::redirect(&format!(
            "{back}?key={}&notice={notice}&msg={}#{}",
            crate::settings::encode_query(key),
            crate::settings::encode_query(&super::value::truncate(&message, 600)),
            crate::settings::encode_query(&crate::settings::key_anchor(key))
        ));
    }
    Ok(outcome)
}
