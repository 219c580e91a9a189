//! Server functions of the settings page. Each one is a public HTTP endpoint: it checks that the
//! caller is a superuser first, then calls the store. Expected failures (a validation error, a
//! conflict, a no-op) are data in the result, not errors.

use leptos::prelude::*;

use super::types::{AuditPage, PolicyPage, SaveOutcome};
use crate::error::AppError;

#[server(endpoint = "settings_data")]
pub async fn settings_data(category: String) -> Result<PolicyPage, AppError> {
    use super::types::KEY_HISTORY_ROWS;
    use crate::auth::guard::require_superuser;
    use crate::policy::registry::{keys_in, Category};

    require_superuser()?;
    let store = &crate::context::server_context::<crate::policy::store::PolicyStore>()?;
    // The revision first: what follows is read at it, from memory while it stays the same.
    let (stamp, resolved) = store.current().await?;
    let resolved = resolved.as_ref().clone();
    let history = match Category::from_slug(&category) {
        Some(cat) => {
            let keys: Vec<&'static str> = keys_in(cat).map(|s| s.key).collect();
            store.recent_history_at(&stamp, &keys, KEY_HISTORY_ROWS).await?.as_ref().clone()
        }
        None => Vec::new(),
    };
    let revision = stamp.revision;
    let env_warning = store.env_warning.get();
    Ok(PolicyPage { resolved, history, revision, env_warning })
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
) -> Result<SaveOutcome, AppError> {
    use crate::policy::registry::{spec, Kind};

    let (store, actor) = superuser_actor()?;
    let is_bool = spec(&key).is_some_and(|s| s.kind == Kind::Bool);
    let raw = match value {
        Some(v) if is_bool => {
            if v == "true" || v == "on" {
                "true".to_string()
            } else {
                v
            }
        }
        Some(v) => v,
        None if is_bool => "false".to_string(),
        None => String::new(),
    };
    let result = store.update_text(&actor, &key, &raw, expected_version, reason.as_deref()).await;
    finish(key, result, return_to)
}

/// Removes a key's admin value, so it falls back to the inherited (env or default) value.
#[server(endpoint = "reset_policy")]
pub async fn reset_policy(
    key: String,
    expected_version: i64,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<SaveOutcome, AppError> {
    let (store, actor) = superuser_actor()?;
    let result = store.reset(&actor, &key, expected_version, reason.as_deref()).await;
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
) -> Result<SaveOutcome, AppError> {
    let (store, actor) = superuser_actor()?;
    let result = store.revert(&actor, &key, audit_id, expected_version, reason.as_deref()).await;
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
) -> Result<AuditPage, AppError> {
    use super::types::AUDIT_PAGE_ROWS;
    use crate::policy::audit::AuditFilter;

    crate::auth::guard::require_superuser()?;
    let store = crate::context::server_context::<crate::policy::store::PolicyStore>()?;
    let filter = AuditFilter::from_fields(key, actor, from, to, before, Some(AUDIT_PAGE_ROWS + 1));
    match store.history(&filter).await {
        Ok(mut rows) => {
            let older = if rows.len() as i64 > AUDIT_PAGE_ROWS {
                rows.truncate(AUDIT_PAGE_ROWS as usize);
                rows.last().map(|r| r.id)
            } else {
                None
            };
            Ok(AuditPage { rows, older, error: None })
        }
        Err(e @ AppError::Field { .. }) => Ok(AuditPage { rows: vec![], older: None, error: Some(e.to_string()) }),
        Err(e) => Err(e),
    }
}

/// The policy store and the signed-in superuser as the actor of a change (401 or 403
/// otherwise).
#[cfg(feature = "ssr")]
fn superuser_actor() -> Result<(crate::policy::store::PolicyStore, crate::policy::store::Actor), AppError> {
    let user = crate::auth::guard::require_superuser()?;
    let store = crate::context::server_context::<crate::policy::store::PolicyStore>()?;
    Ok((store, crate::policy::store::Actor::user(user.id, user.email)))
}

/// Turns a store result into the page's outcome. A form posted without JavaScript is sent back
/// to the page it came from, with the outcome in the query so it shows next to the field.
#[cfg(feature = "ssr")]
fn finish(
    key: String,
    result: Result<crate::policy::store::WriteOutcome, AppError>,
    return_to: Option<String>,
) -> Result<SaveOutcome, AppError> {
    use crate::paths::{encode_query, key_anchor, safe_next};
    use crate::policy::store::WriteOutcome;
    use crate::policy::value::{canonical_json, truncate};

    let outcome = match result {
        Ok(WriteOutcome::Changed { version, .. }) => SaveOutcome::Saved { key, version },
        Ok(WriteOutcome::Unchanged) => SaveOutcome::Unchanged { key },
        Ok(WriteOutcome::Conflict(c)) => SaveOutcome::Conflict(c),
        Err(AppError::Field { field, message }) => SaveOutcome::Invalid { key, field, message },
        Err(AppError::NotFound(message)) => SaveOutcome::Invalid { key: key.clone(), field: key, message },
        Err(e) => return Err(e),
    };
    if crate::error::is_plain_form_post() {
        let back = safe_next(return_to.as_deref());
        let back = back.split(['?', '#']).next().unwrap_or_default().to_string();
        let (notice, message) = match &outcome {
            SaveOutcome::Saved { .. } => ("saved", String::new()),
            SaveOutcome::Unchanged { .. } => ("unchanged", String::new()),
            SaveOutcome::Invalid { message, .. } => ("error", message.clone()),
            SaveOutcome::Conflict(c) => {
                // The address must stay short: the value in the message is cut.
                let mut c = c.clone();
                c.current_value =
                    c.current_value.map(|v| serde_json::Value::String(truncate(&canonical_json(&v), 120)));
                ("conflict", c.to_string())
            }
        };
        let key = outcome.key();
        leptos_axum::redirect(&format!(
            "{back}?key={}&notice={notice}&msg={}#{}",
            encode_query(key),
            encode_query(&truncate(&message, 600)),
            encode_query(&key_anchor(key))
        ));
    }
    Ok(outcome)
}
