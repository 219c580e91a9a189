//! Server functions of the settings page. Each one is a public HTTP endpoint: it checks that the
//! caller is a superuser first, then calls the store. Expected failures (a validation error, a
//! conflict, a no-op) are data in the result, not errors.

// A server function's arguments are its form's fields: integration_action takes nine.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;

use super::types::{
    ApplyOutcome, AuditPage, DecisionOutcome, IntegrationOutcome, IntegrationsPage, PolicyPage, RequestsPage,
    RestoreOutcome, RevisionsPage, SaveOutcome,
};
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
    let open_requests = store.open_request_count().await?;
    Ok(PolicyPage { resolved, history, revision, env_warning, open_requests })
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
    let target = crate::policy::change_set::Target::Text(raw);
    change_key(&store, &actor, key, target, expected_version, reason, return_to).await
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
    let target = crate::policy::change_set::Target::Reset;
    change_key(&store, &actor, key, target, expected_version, reason, return_to).await
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
    if needs_review(&key) {
        use crate::policy::change_set::Target;
        let target = match store.value_after(&key, audit_id).await {
            Ok(Some(v)) => Target::Value(v),
            Ok(None) => Target::Reset,
            Err(e) => return finish(key, Err(e), return_to),
        };
        return request_one(&store, &actor, key, target, expected_version, reason, return_to).await;
    }
    let result = store.revert(&actor, &key, audit_id, expected_version, reason.as_deref()).await;
    finish(key, result, return_to)
}

/// Pins a key: its admin value becomes the value in force now, even when inherited.
#[server(endpoint = "pin_policy")]
pub async fn pin_policy(
    key: String,
    expected_version: i64,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<SaveOutcome, AppError> {
    let (store, actor) = superuser_actor()?;
    let target = crate::policy::change_set::Target::Pin;
    change_key(&store, &actor, key, target, expected_version, reason, return_to).await
}

/// Applies edits staged on the page as one change set with one reason (a change request when
/// one of them needs review). `changes` is a JSON list of `{key, text, expected_version}`.
#[server(endpoint = "apply_changes")]
pub async fn apply_changes(
    changes: String,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<ApplyOutcome, AppError> {
    use super::types::StagedChange;
    use crate::policy::change_set::{
        ChangeSet, ChangeSetKind, ChangeSetOutcome, KeyChange, Proposal, Target, MAX_CHANGES,
    };

    let (store, actor) = superuser_actor()?;
    let staged: Vec<StagedChange> = serde_json::from_str(&changes).map_err(|e| {
        AppError::invalid("changes", format!("must be a JSON list of {{key, text, expected_version}}: {e}"))
    })?;
    if staged.is_empty() || staged.len() > MAX_CHANGES {
        return Err(AppError::invalid(
            "changes",
            format!("must hold 1 to {MAX_CHANGES} changes, got {}", staged.len()),
        ));
    }
    let set = ChangeSet {
        reason,
        changes: staged
            .into_iter()
            .map(|c| KeyChange { key: c.key, target: Target::Text(c.text), expected_version: Some(c.expected_version) })
            .collect(),
        expected_revision: None,
    };
    let outcome = match store.propose(&actor, &set, ChangeSetKind::Apply).await {
        Ok(Proposal::Applied(ChangeSetOutcome::Applied { revision, lines, .. })) => {
            ApplyOutcome::Applied { revision, keys: lines.len() }
        }
        Ok(Proposal::Applied(_)) => ApplyOutcome::Unchanged,
        Ok(Proposal::Requested { id, .. }) => ApplyOutcome::Requested { id },
        Err(e @ (AppError::Field { .. } | AppError::Conflict(_))) => ApplyOutcome::Refused(e.to_string()),
        Err(e) => return Err(e),
    };
    // Posted as a form (as the page does): back to the page, the outcome in its address.
    if crate::error::is_plain_form_post() {
        let (ok, msg) = outcome.sentence();
        redirect_with_notice(return_to.as_deref(), if ok { "applied" } else { "error" }, &msg);
    }
    Ok(outcome)
}

/// The policy revisions, and the comparison the address asks for: revision `rev` or run
/// `run`'s snapshot on the left, revision `with` or today on the right.
#[server(endpoint = "policy_revisions")]
pub async fn policy_revisions(
    rev: Option<i64>,
    run: Option<i64>,
    with: Option<i64>,
    before: Option<i64>,
) -> Result<RevisionsPage, AppError> {
    use super::types::{PolicySide, REVISIONS_PAGE_ROWS};

    crate::auth::guard::require_superuser()?;
    let store = crate::context::server_context::<crate::policy::store::PolicyStore>()?;
    let current = store.revision().await?;
    let mut revisions = store.revisions(before, REVISIONS_PAGE_ROWS + 1).await?;
    let older = if revisions.len() as i64 > REVISIONS_PAGE_ROWS {
        revisions.truncate(REVISIONS_PAGE_ROWS as usize);
        revisions.last().map(|r| r.revision)
    } else {
        None
    };
    let left = match (rev, run) {
        (Some(n), _) => Some(PolicySide::Revision(n)),
        (None, Some(r)) => Some(PolicySide::Run(r)),
        (None, None) => None,
    };
    let right = with.map(PolicySide::Revision).unwrap_or(PolicySide::Today);
    let (comparison, error) = match left {
        None => (None, None),
        Some(left) => match compare(&store, left, right, current).await {
            Ok(c) => (Some(c), None),
            Err(e @ (AppError::NotFound(_) | AppError::Field { .. })) => (None, Some(e.to_string())),
            Err(e) => return Err(e),
        },
    };
    Ok(RevisionsPage { current, revisions, older, comparison, error })
}

/// Two whole policies key by key, and the restore's dry run when the right side is today.
#[cfg(feature = "ssr")]
async fn compare(
    store: &crate::policy::store::PolicyStore,
    left: super::types::PolicySide,
    right: super::types::PolicySide,
    current: i64,
) -> Result<super::types::Comparison, AppError> {
    use super::types::{CompareLine, Comparison, PolicySide};
    use crate::policy::change_set::ChangeSetOutcome;
    use crate::policy::registry::REGISTRY;
    use crate::policy::value::{canonical_json, truncate};
    use std::collections::HashMap;

    let actor = crate::policy::store::Actor::user(0, "preview");
    // key → (effective value, provenance for the page)
    let side = |s: PolicySide| async move {
        let short = |v: &serde_json::Value, layer: crate::policy::registry::Layer| {
            format!("effective={} (source={layer})", truncate(&canonical_json(v), 60))
        };
        let map: HashMap<String, (serde_json::Value, String)> = match s {
            PolicySide::Today => store
                .resolve()
                .await?
                .into_iter()
                .map(|r| (r.key.clone(), (r.value.clone(), short(&r.value, r.source))))
                .collect(),
            PolicySide::Revision(n) => store
                .resolve_at(n)
                .await?
                .into_iter()
                .map(|r| (r.key.clone(), (r.value.clone(), short(&r.value, r.source))))
                .collect(),
            PolicySide::Run(id) => crate::runs::server::snapshot(&store.db, id)
                .await?
                .snapshot
                .keys
                .into_iter()
                .map(|k| (k.key.clone(), (k.value.clone(), short(&k.value, k.captured_from))))
                .collect(),
        };
        Ok::<_, AppError>(map)
    };
    let (l, r) = (side(left).await?, side(right).await?);
    let lines = REGISTRY
        .iter()
        .map(|s| {
            let (lv, lt) = l.get(s.key).cloned().unwrap_or((serde_json::Value::Null, "(absent)".into()));
            let (rv, rt) = r.get(s.key).cloned().unwrap_or((serde_json::Value::Null, "(absent)".into()));
            CompareLine { key: s.key.to_string(), left: lt, right: rt, differs: lv != rv }
        })
        .collect();
    let restore = match (left, right) {
        (PolicySide::Today, _) | (_, PolicySide::Revision(_)) | (_, PolicySide::Run(_)) => None,
        (PolicySide::Revision(n), PolicySide::Today) => {
            Some(store.restore_revision(&actor, n, None, Some(current), true).await)
        }
        (PolicySide::Run(id), PolicySide::Today) => {
            Some(crate::runs::server::restore_run_policy(store, &actor, id, None, Some(current), true).await)
        }
    };
    let restore = restore.map(|r| match r {
        Ok(crate::policy::change_set::Proposal::Applied(ChangeSetOutcome::Preview { lines })) => Ok(lines),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    });
    Ok(Comparison { left, right, lines, restore })
}

/// Restores revision `revision`, or the policy run `run` was created under, as one change set;
/// refused when the policy moved past `shown_revision`, the revision its diff was shown at.
#[server(endpoint = "restore_policy")]
pub async fn restore_policy(
    revision: Option<i64>,
    run: Option<i64>,
    shown_revision: i64,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<RestoreOutcome, AppError> {
    use crate::policy::change_set::{ChangeSetOutcome, Proposal};

    let (store, actor) = superuser_actor()?;
    let result = match (revision, run) {
        (Some(n), None) => store.restore_revision(&actor, n, reason.as_deref(), Some(shown_revision), false).await,
        (None, Some(id)) => {
            crate::runs::server::restore_run_policy(&store, &actor, id, reason.as_deref(), Some(shown_revision), false)
                .await
        }
        _ => Err(AppError::invalid("revision", "name a revision or a run to restore, not both")),
    };
    let outcome = match result {
        Ok(Proposal::Applied(ChangeSetOutcome::Applied { revision, lines, .. })) => {
            RestoreOutcome::Restored { revision, keys: lines.len() }
        }
        Ok(Proposal::Requested { id, .. }) => RestoreOutcome::Requested { id },
        Ok(Proposal::Applied(_)) => RestoreOutcome::Unchanged,
        Err(e @ (AppError::Field { .. } | AppError::Conflict(_) | AppError::NotFound(_))) => {
            RestoreOutcome::Refused(e.to_string())
        }
        Err(e) => return Err(e),
    };
    if crate::error::is_plain_form_post() {
        let (ok, msg) = outcome.sentence();
        let notice = match &outcome {
            RestoreOutcome::Restored { .. } => "restored",
            RestoreOutcome::Requested { .. } => "requested",
            RestoreOutcome::Unchanged => "unchanged",
            RestoreOutcome::Refused(_) => "error",
        };
        debug_assert_eq!(ok, notice != "error");
        // Back to the same comparison, which now shows what is left to restore (nothing).
        let shown = match (revision, run) {
            (Some(n), None) => format!("rev={n}"),
            (None, Some(id)) => format!("run={id}"),
            _ => String::new(),
        };
        redirect_with_notice_and(return_to.as_deref(), notice, &msg, &shown);
    }
    Ok(outcome)
}

/// The change requests: open ones with what approving each would change now, then the latest
/// decided.
#[server(endpoint = "change_requests")]
pub async fn change_requests() -> Result<RequestsPage, AppError> {
    let (store, actor) = superuser_actor()?;
    Ok(RequestsPage { requests: store.requests(20).await?, viewer_id: actor.id.unwrap_or_default() })
}

/// Approves (and applies), rejects or withdraws change request `id`. Never the author's to
/// approve or reject, only the author's to withdraw.
#[server(endpoint = "decide_request")]
pub async fn decide_request(
    id: i64,
    decision: String,
    comment: Option<String>,
    return_to: Option<String>,
) -> Result<DecisionOutcome, AppError> {
    let (store, actor) = superuser_actor()?;
    let result = match decision.as_str() {
        "approve" => store.approve(&actor, id, comment.as_deref()).await.map(|o| match o {
            crate::policy::change_set::ChangeSetOutcome::Applied { revision, lines, .. } => {
                format!("Approved change request {id}: {} key(s) changed, now revision {revision}.", lines.len())
            }
            _ => format!("Approved change request {id}: it changed nothing, every value was already in force."),
        }),
        "reject" => {
            store.reject(&actor, id, comment.as_deref()).await.map(|()| format!("Rejected change request {id}."))
        }
        "withdraw" => {
            store.withdraw(&actor, id, comment.as_deref()).await.map(|()| format!("Withdrew change request {id}."))
        }
        other => Err(AppError::invalid("decision", format!("must be approve, reject or withdraw, got \"{other}\""))),
    };
    let outcome = match result {
        Ok(m) => DecisionOutcome::Done(m),
        Err(e @ (AppError::Field { .. } | AppError::Conflict(_) | AppError::NotFound(_) | AppError::Forbidden(_))) => {
            DecisionOutcome::Refused(e.to_string())
        }
        Err(e) => return Err(e),
    };
    if crate::error::is_plain_form_post() {
        let (notice, msg) = match &outcome {
            DecisionOutcome::Done(m) => ("done", m.as_str()),
            DecisionOutcome::Refused(m) => ("error", m.as_str()),
        };
        redirect_with_notice(return_to.as_deref(), notice, msg);
    }
    Ok(outcome)
}

/// The integrations section's data: API tokens, webhooks and the newest deliveries.
#[server(endpoint = "integrations_data")]
pub async fn integrations_data() -> Result<IntegrationsPage, AppError> {
    use super::types::{DeliveryView, TokenView, WebhookView};
    let (store, _) = superuser_actor()?;
    let db = &store.db;
    let tokens = crate::auth::api_token::list_api_tokens(db)
        .await?
        .into_iter()
        .map(|t| TokenView {
            name: t.name,
            owner: t.owner,
            scopes: t.scopes,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        })
        .collect();
    let webhooks = crate::policy::webhooks::list_webhooks(db)
        .await?
        .into_iter()
        .map(|w| WebhookView {
            id: w.id,
            url: w.url,
            events: w.events,
            created_at: w.created_at,
            disabled_at: w.disabled_at,
        })
        .collect();
    let deliveries = crate::policy::webhooks::deliveries(db, 50)
        .await?
        .into_iter()
        .map(|d| DeliveryView {
            id: d.id,
            webhook_id: d.webhook_id,
            event: d.event,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
        })
        .collect();
    Ok(IntegrationsPage { tokens, webhooks, deliveries })
}

/// One integrations action: `create_token` (name, scopes, days; the token is in the answer,
/// once), `revoke_token` (name), `add_webhook` (url, secret, events), `disable_webhook`,
/// `test_webhook` (id), `redeliver` (id).
#[server(endpoint = "integration_action")]
pub async fn integration_action(
    action: String,
    name: Option<String>,
    scope_write: Option<String>,
    scope_audit: Option<String>,
    expires_in_days: Option<String>,
    url: Option<String>,
    secret: Option<String>,
    events: Option<String>,
    id: Option<i64>,
) -> Result<IntegrationOutcome, AppError> {
    use crate::auth::api_token::{create_api_token, revoke_api_token, ApiScope};
    use crate::auth::token::TokenName;
    use crate::policy::webhooks;

    let user = crate::auth::guard::require_superuser()?;
    let store = crate::context::server_context::<crate::policy::store::PolicyStore>()?;
    let db = &store.db;
    let id_of = || id.filter(|n| *n > 0).ok_or_else(|| AppError::invalid("id", "is required"));
    let result: Result<(String, Option<String>), AppError> = async {
        match action.as_str() {
            "create_token" => {
                let name = TokenName::parse(name.as_deref().unwrap_or_default().trim())
                    .map_err(|_| AppError::invalid("name", "must be 1 to 64 letters, digits, '.', '_' or '-'"))?;
                let mut scopes = vec!["policy:read".to_string()];
                if scope_write.is_some() {
                    scopes.push("policy:write".into());
                }
                if scope_audit.is_some() {
                    scopes.push("audit:read".into());
                }
                let scopes = ApiScope::parse_list(&scopes)?;
                let days = match expires_in_days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
                    None => None,
                    Some(d) => Some(d.parse::<i64>().map_err(|_| {
                        AppError::invalid("expires_in_days", format!("must be a whole number of days, got \"{d}\""))
                    })?),
                };
                let token = create_api_token(db, &name, &user, &scopes, days)
                    .await
                    .map_err(|e| e.map_message(|m| m.replacen("--expires-in-days", "expires_in_days", 1)))?;
                Ok((
                    format!("API token {} created. Copy it now: it is shown only this once.", name.as_str()),
                    Some(token),
                ))
            }
            "revoke_token" => {
                let name = TokenName::parse(name.as_deref().unwrap_or_default())?;
                revoke_api_token(db, &name).await?;
                Ok((format!("API token {} revoked.", name.as_str()), None))
            }
            "add_webhook" => {
                let events: Vec<String> = events
                    .as_deref()
                    .unwrap_or_default()
                    .split([' ', ','])
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect();
                let id = webhooks::add_webhook(
                    db,
                    url.as_deref().unwrap_or_default().trim(),
                    secret.as_deref().unwrap_or_default(),
                    &events,
                    &user.email,
                )
                .await?;
                Ok((format!("Webhook {id} registered."), None))
            }
            "disable_webhook" => {
                let id = id_of()?;
                webhooks::disable_webhook(db, id).await?;
                Ok((format!("Webhook {id} disabled."), None))
            }
            "test_webhook" => {
                let id = id_of()?;
                webhooks::send_test(db, id).await?;
                Ok((format!("Test delivery queued for webhook {id}."), None))
            }
            "redeliver" => {
                let id = id_of()?;
                webhooks::redeliver(db, id).await?;
                Ok((format!("Delivery {id} queued again."), None))
            }
            other => Err(AppError::invalid("action", format!("is not an integrations action: \"{other}\""))),
        }
    }
    .await;
    let outcome = match result {
        Ok((message, secret)) => IntegrationOutcome { ok: true, message, secret },
        Err(e @ AppError::Field { .. }) => IntegrationOutcome { ok: false, message: e.to_string(), secret: None },
        Err(e) => return Err(e),
    };
    // Without JavaScript the answer is a redirect; a new token never goes into an address.
    if crate::error::is_plain_form_post() {
        let message = if outcome.secret.is_some() {
            "Creating a token needs JavaScript (it is shown once, never put in an address); the CLI works too: runtime-policy api-token create".to_string()
        } else {
            outcome.message.clone()
        };
        redirect_with_notice(
            Some(&super::types::Section::Integrations.href()),
            if outcome.ok { "done" } else { "error" },
            &message,
        );
    }
    Ok(outcome)
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

/// Sends a form posted without JavaScript back to its section (never elsewhere: `safe_next`),
/// with the outcome in the query.
#[cfg(feature = "ssr")]
fn redirect_with_notice(return_to: Option<&str>, notice: &str, msg: &str) {
    redirect_with_notice_and(return_to, notice, msg, "");
}

/// [`redirect_with_notice`], with `more` (query parameters, already encoded) after the outcome.
#[cfg(feature = "ssr")]
fn redirect_with_notice_and(return_to: Option<&str>, notice: &str, msg: &str, more: &str) {
    use crate::paths::{encode_query, safe_next};
    let back = safe_next(return_to);
    let back = back.split(['?', '#']).next().unwrap_or_default().to_string();
    let msg = crate::policy::value::truncate(msg, 600);
    let more = if more.is_empty() { String::new() } else { format!("&{more}") };
    leptos_axum::redirect(&format!("{back}?notice={notice}&msg={}{more}", encode_query(&msg)));
}

/// One key's change from the page: a change request for a key that needs review, else the
/// store's own write.
#[cfg(feature = "ssr")]
async fn change_key(
    store: &crate::policy::store::PolicyStore,
    actor: &crate::policy::store::Actor,
    key: String,
    target: crate::policy::change_set::Target,
    expected_version: i64,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<SaveOutcome, AppError> {
    use crate::policy::change_set::Target;
    if needs_review(&key) {
        return request_one(store, actor, key, target, expected_version, reason, return_to).await;
    }
    let reason_ref = reason.as_deref();
    let result = match &target {
        Target::Text(raw) => store.update_text(actor, &key, raw, expected_version, reason_ref).await,
        Target::Value(v) => store.update(actor, &key, v, expected_version, reason_ref).await,
        Target::Reset => store.reset(actor, &key, expected_version, reason_ref).await,
        Target::Pin => store.pin(actor, &key, expected_version, reason_ref).await,
    };
    finish(key, result, return_to)
}

#[cfg(feature = "ssr")]
fn needs_review(key: &str) -> bool {
    crate::policy::registry::spec(key).is_some_and(|s| s.needs_review())
}

/// A change of a key that needs review, made on the page: a change request of that one key.
/// A stale version is the usual conflict; a value not allowed is refused now, not at approval.
#[cfg(feature = "ssr")]
async fn request_one(
    store: &crate::policy::store::PolicyStore,
    actor: &crate::policy::store::Actor,
    key: String,
    target: crate::policy::change_set::Target,
    expected_version: i64,
    reason: Option<String>,
    return_to: Option<String>,
) -> Result<SaveOutcome, AppError> {
    use crate::policy::audit::Conflict;
    use crate::policy::change_set::{ChangeSet, ChangeSetKind, ChangeSetOutcome, KeyChange, Proposal};
    use crate::policy::store::WriteOutcome;

    let now = store.resolve_key(&key).await?;
    if now.admin_version != expected_version {
        let conflict = Conflict {
            key: key.clone(),
            expected_version,
            current_version: now.admin_version,
            changed_by: now.updated_by.clone().unwrap_or_default(),
            changed_at: now.updated_at.clone().unwrap_or_default(),
            current_value: now.layer(crate::policy::registry::Layer::Admin).and_then(|l| l.value.clone()),
        };
        return finish(key, Ok(WriteOutcome::Conflict(conflict)), return_to);
    }
    let set = ChangeSet {
        reason,
        changes: vec![KeyChange { key: key.clone(), target, expected_version: Some(expected_version) }],
        expected_revision: None,
    };
    match store.propose(actor, &set, ChangeSetKind::Apply).await {
        Ok(Proposal::Requested { id, .. }) => respond(SaveOutcome::Requested { key, id }, return_to),
        Ok(Proposal::Applied(ChangeSetOutcome::Applied { revision, lines, .. })) => {
            let version = lines.first().map(|l| l.version).unwrap_or_default();
            finish(key, Ok(WriteOutcome::Changed { version, revision, audit_id: 0 }), return_to)
        }
        Ok(Proposal::Applied(_)) => finish(key, Ok(WriteOutcome::Unchanged), return_to),
        Err(e) => finish(key, Err(e), return_to),
    }
}

/// Turns a store result into the page's outcome. A form posted without JavaScript is sent back
/// to the page it came from, with the outcome in the query so it shows next to the field.
#[cfg(feature = "ssr")]
fn finish(
    key: String,
    result: Result<crate::policy::store::WriteOutcome, AppError>,
    return_to: Option<String>,
) -> Result<SaveOutcome, AppError> {
    use crate::policy::store::WriteOutcome;

    let outcome = match result {
        Ok(WriteOutcome::Changed { version, .. }) => SaveOutcome::Saved { key, version },
        Ok(WriteOutcome::Unchanged) => SaveOutcome::Unchanged { key },
        Ok(WriteOutcome::Conflict(c)) => SaveOutcome::Conflict(c),
        Err(AppError::Field { field, message }) => SaveOutcome::Invalid { key, field, message },
        Err(AppError::NotFound(message)) => SaveOutcome::Invalid { key: key.clone(), field: key, message },
        Err(e) => return Err(e),
    };
    respond(outcome, return_to)
}

/// The outcome as the answer: a form posted without JavaScript is sent back to the page it came
/// from, with the outcome in the query so it shows next to the field.
#[cfg(feature = "ssr")]
fn respond(outcome: SaveOutcome, return_to: Option<String>) -> Result<SaveOutcome, AppError> {
    use crate::paths::{encode_query, key_anchor, safe_next};
    use crate::policy::value::{canonical_json, truncate};

    if crate::error::is_plain_form_post() {
        let back = safe_next(return_to.as_deref());
        let back = back.split(['?', '#']).next().unwrap_or_default().to_string();
        let (notice, message) = match &outcome {
            SaveOutcome::Requested { id, .. } => ("requested", id.to_string()),
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
