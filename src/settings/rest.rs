//! `/api/v1/policy`: the policy as a versioned REST resource, for a personal API token
//! (`Authorization: Bearer rpa_…`, acting for its owner with its scopes) or a superuser's
//! session. Reads carry an `ETag`: the policy revision for the whole policy (`If-None-Match`
//! gives 304), the key's admin version for one key. Writes need `If-Match` with that version
//! (428 without it, 412 when it is stale, saying who changed the key, when and to what) and go
//! through the same audited store as the page: one transaction with the audit row, and a change
//! request (202) for a key that needs review. Change sets, change requests and their
//! decisions, revisions, the audit log, and the admin layer's export and import are here too.
//! A worker token with the scope policy:read may read the baseline, never write. Errors are
//! JSON `{error, field, status}`.

use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::auth::api_token::{verify_api_token, ApiCaller, ApiScope};
use crate::auth::guard::require_superuser_of;
use crate::auth::session::RequestUser;
use crate::error::AppError;
use crate::paths;
use crate::policy::change_set::{AdminExport, ChangeSet, ChangeSetKind, ChangeSetOutcome, KeyChange, Proposal, Target};
use crate::policy::registry::{spec, unknown_key};
use crate::policy::resolve::Resolved;
use crate::policy::store::{Actor, PolicyStore, WriteOutcome};
use crate::state::AppState;

pub fn routes() -> Vec<(&'static str, Method, MethodRouter<AppState>)> {
    vec![
        (paths::API_POLICY, Method::GET, get(read_policy)),
        (paths::API_POLICY_KEY, Method::GET, get(read_key)),
        (paths::API_POLICY_KEY, Method::PUT, put(write_key)),
        (paths::API_POLICY_KEY, Method::DELETE, delete(reset_key)),
        (paths::API_POLICY_EXPORT, Method::GET, get(export)),
        (paths::API_POLICY_IMPORT, Method::POST, post(import)),
        (paths::API_POLICY_CHANGE_SETS, Method::POST, post(change_sets)),
        (paths::API_POLICY_REQUESTS, Method::GET, get(requests)),
        (paths::API_POLICY_REQUEST_DECISION, Method::POST, post(decide)),
        (paths::API_POLICY_REVISIONS, Method::GET, get(revisions)),
        (paths::API_POLICY_REVISION, Method::GET, get(revision)),
        (paths::API_AUDIT, Method::GET, get(audit)),
    ]
}

/// What [`routes`] are, for the OpenAPI document.
pub fn docs() -> Vec<crate::api_doc::RouteDoc> {
    use crate::api_doc::{Caller, RouteDoc};
    let doc =
        |path, method, summary, caller, body, responses| RouteDoc { path, method, summary, caller, body, responses };
    vec![
        doc(paths::API_POLICY, Method::GET, "Every key: effective value, source, layers, warnings, version (ETag: the revision; 304 on If-None-Match)", Caller::PolicyReader, None,
            &[(200, "{revision, keys}"), (304, "unchanged since the ETag"), (401, "no live credential"), (403, "lacks policy:read")]),
        doc(paths::API_POLICY_KEY, Method::GET, "One key (ETag: its admin version)", Caller::PolicyReader, None,
            &[(200, "the key"), (401, "no live credential"), (403, "lacks policy:read"), (404, "no such key")]),
        doc(paths::API_POLICY_KEY, Method::PUT, "Set a key's admin value; If-Match with its version is required", Caller::Api("policy:write"), Some("{\"value\": …, \"reason\": \"…\"}"),
            &[(200, "changed (or unchanged), with the new ETag"), (202, "a change request, for a key that needs review"), (400, "not JSON"), (401, "no live credential"), (403, "lacks policy:write"), (404, "no such key"), (412, "stale: who changed it, when, to what"), (422, "a value not allowed"), (428, "If-Match missing")]),
        doc(paths::API_POLICY_KEY, Method::DELETE, "Reset a key (remove its admin value); If-Match with its version is required", Caller::Api("policy:write"), None,
            &[(200, "reset (or already inherited)"), (202, "a change request, for a key that needs review"), (401, "no live credential"), (403, "lacks policy:write"), (404, "no such key"), (412, "stale: who changed it, when, to what"), (428, "If-Match missing")]),
        doc(paths::API_POLICY_EXPORT, Method::GET, "The admin layer as a document (config as code)", Caller::Api("policy:read"), None,
            &[(200, "{format, revision, keys}"), (401, "no live credential"), (403, "lacks policy:read")]),
        doc(paths::API_POLICY_IMPORT, Method::POST, "Make the admin layer exactly a document's (?dry_run=true: the diff only)", Caller::Api("policy:write"), Some("a document from the export"),
            &[(200, "applied, or the dry run's diff"), (202, "a change request, when a reviewed key changes"), (400, "not JSON"), (401, "no live credential"), (403, "lacks policy:write"), (409, "a key changed meanwhile"), (422, "not an export, or a value not allowed")]),
        doc(paths::API_POLICY_CHANGE_SETS, Method::POST, "Apply a change set in one transaction (?dry_run=true: the diff only)", Caller::Api("policy:write"), Some("{\"reason\", \"changes\": [{\"key\", \"value\" | \"reset\": true | \"pin\": true, \"expected_version\"}]}"),
            &[(200, "applied, or the dry run's diff"), (202, "a change request, when a reviewed key changes"), (400, "not JSON"), (401, "no live credential"), (403, "lacks policy:write"), (409, "a key changed since it was read: who, when, what"), (422, "every key that failed")]),
        doc(paths::API_POLICY_REQUESTS, Method::GET, "Change requests: open ones with their diff now, then decided ones", Caller::Api("policy:read"), None,
            &[(200, "the requests"), (401, "no live credential"), (403, "lacks policy:read")]),
        doc(paths::API_POLICY_REQUEST_DECISION, Method::POST, "Approve (and apply), reject or withdraw a change request; decision is approve, reject or withdraw", Caller::Api("policy:write"), Some("{\"comment\": \"…\"} (required to reject)"),
            &[(200, "decided; an approval answers the applied change set"), (401, "no live credential"), (403, "lacks policy:write, or the author approving or rejecting"), (404, "no such request or decision"), (409, "decided already, or stale: what changed"), (422, "a comment that is not allowed")]),
        doc(paths::API_POLICY_REVISIONS, Method::GET, "Policy revisions, newest first (?before=&limit=)", Caller::Api("policy:read"), None,
            &[(200, "who, when, why, which keys"), (401, "no live credential"), (403, "lacks policy:read")]),
        doc(paths::API_POLICY_REVISION, Method::GET, "Every key as it stood at a revision", Caller::Api("policy:read"), None,
            &[(200, "{revision, keys}"), (401, "no live credential"), (403, "lacks policy:read"), (404, "no such revision"), (422, "not a revision number")]),
        doc(paths::API_AUDIT, Method::GET, "The audit log, newest first (?key=&actor=&from=&to=&before=&limit=)", Caller::Api("audit:read"), None,
            &[(200, "audit rows with what was in force before and after"), (401, "no live credential"), (403, "lacks audit:read"), (422, "a filter that is not allowed")]),
    ]
}

/// The caller, refused (403) without `scope`.
async fn allowed(
    state: &AppState,
    headers: &HeaderMap,
    user: &Option<Extension<RequestUser>>,
    scope: ApiScope,
) -> Result<ApiCaller, AppError> {
    let who = caller(state, headers, user.as_ref().map(|Extension(u)| u)).await?;
    who.require(scope)?;
    Ok(who)
}

/// The caller of a read: an API token or session with policy:read, or a worker token with
/// policy:read (a service enforcing the baseline; it reads, never writes).
async fn reader(state: &AppState, headers: &HeaderMap, user: Option<&RequestUser>) -> Result<(), AppError> {
    if crate::auth::token::bearer_token(headers).is_some_and(|t| t.starts_with("rpw_")) {
        let token = crate::auth::token::verify_worker_token(&state.db, headers).await?;
        return token.require(crate::auth::token::Scope::PolicyRead, None);
    }
    caller(state, headers, user).await?.require(ApiScope::PolicyRead)
}

/// `?dry_run=true`, and the other query fields a handler reads.
#[derive(serde::Deserialize, Default)]
struct Params {
    dry_run: Option<bool>,
    before: Option<i64>,
    limit: Option<i64>,
    key: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn json_body(body: &Bytes) -> Result<Value, AppError> {
    serde_json::from_slice(body).map_err(|e| AppError::malformed("body", format!("is not valid JSON: {e}")))
}

/// A proposal as the answer: 200 with the diff (applied, or a dry run), 202 with the request.
fn proposal_answer(p: Proposal) -> Response {
    match p {
        Proposal::Requested { id, keys } => {
            (StatusCode::ACCEPTED, Json(json!({ "change_request": id, "status": "open", "needs_review": keys })))
                .into_response()
        }
        Proposal::Applied(ChangeSetOutcome::Applied { id, revision, lines }) => {
            Json(json!({ "applied": true, "change_set": id, "revision": revision, "changes": lines })).into_response()
        }
        Proposal::Applied(ChangeSetOutcome::Preview { lines }) => {
            Json(json!({ "applied": false, "dry_run": true, "changes": lines })).into_response()
        }
        Proposal::Applied(ChangeSetOutcome::Unchanged) => {
            Json(json!({ "applied": false, "changes": [], "message": "every value is already in force" }))
                .into_response()
        }
    }
}

fn actor_of(who: &ApiCaller) -> Actor {
    Actor { id: Some(who.user.id), email: who.actor_name() }
}

/// `GET /api/v1/policy/export`: the admin layer as a document.
async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
) -> Result<Response, AppError> {
    allowed(&state, &headers, &user, ApiScope::PolicyRead).await?;
    Ok(Json(state.policy.export_admin().await?).into_response())
}

/// `POST /api/v1/policy/import[?dry_run=true]`: the admin layer made exactly the document's.
async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
    Query(q): Query<Params>,
    body: Bytes,
) -> Result<Response, AppError> {
    let who = allowed(&state, &headers, &user, ApiScope::PolicyWrite).await?;
    let doc = json_body(&body)?;
    let export = AdminExport::from_json(&doc).map_err(|(field, why)| AppError::invalid(&field, why))?;
    let reason = Some("import");
    let p = state.policy.import_admin(&actor_of(&who), &export, reason, q.dry_run.unwrap_or(false)).await?;
    Ok(proposal_answer(p))
}

/// `POST /api/v1/policy/change-sets[?dry_run=true]`: a change set in its file form.
async fn change_sets(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
    Query(q): Query<Params>,
    body: Bytes,
) -> Result<Response, AppError> {
    let who = allowed(&state, &headers, &user, ApiScope::PolicyWrite).await?;
    let set = ChangeSet::from_json(&json_body(&body)?).map_err(|(field, why)| AppError::invalid(&field, why))?;
    let actor = actor_of(&who);
    if q.dry_run.unwrap_or(false) {
        let p = Proposal::Applied(state.policy.apply_change_set(&actor, &set, ChangeSetKind::Apply, true).await?);
        return Ok(proposal_answer(p));
    }
    Ok(proposal_answer(state.policy.propose(&actor, &set, ChangeSetKind::Apply).await?))
}

/// `GET /api/v1/policy/change-requests`: open requests with their diff now, then decided ones.
async fn requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
) -> Result<Response, AppError> {
    allowed(&state, &headers, &user, ApiScope::PolicyRead).await?;
    Ok(Json(state.policy.requests(50).await?).into_response())
}

/// `POST /api/v1/policy/change-requests/{id}/approve|reject|withdraw` `{comment}`.
async fn decide(
    State(state): State<AppState>,
    Path((id, decision)): Path<(String, String)>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let who = allowed(&state, &headers, &user, ApiScope::PolicyWrite).await?;
    let id: i64 = id.parse().ok().filter(|n| *n > 0).ok_or_else(|| AppError::invalid("id", "must be a request id"))?;
    let comment = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match json_body(&body)?.get("comment") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => return Err(AppError::invalid("comment", "must be a string")),
        }
    };
    // The person decides: a token acts for its owner, who must not be the author.
    let actor = Actor { id: Some(who.user.id), email: who.user.email.clone() };
    let store = &state.policy;
    match decision.as_str() {
        "approve" => Ok(proposal_answer(Proposal::Applied(store.approve(&actor, id, comment.as_deref()).await?))),
        "reject" => {
            store.reject(&actor, id, comment.as_deref()).await.map(|()| Json(store_request(id)).into_response())
        }
        "withdraw" => {
            store.withdraw(&actor, id, comment.as_deref()).await.map(|()| Json(store_request(id)).into_response())
        }
        other => Err(AppError::NotFound(format!("no decision \"{other}\": approve, reject or withdraw"))),
    }
}

fn store_request(id: i64) -> Value {
    json!({ "change_request": id, "decided": true })
}

/// `GET /api/v1/policy/revisions?before=&limit=`.
async fn revisions(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
    Query(q): Query<Params>,
) -> Result<Response, AppError> {
    allowed(&state, &headers, &user, ApiScope::PolicyRead).await?;
    Ok(Json(state.policy.revisions(q.before, q.limit.unwrap_or(50)).await?).into_response())
}

/// `GET /api/v1/policy/revisions/{n}`: every key as it stood at revision `n`.
async fn revision(
    State(state): State<AppState>,
    Path(n): Path<String>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
) -> Result<Response, AppError> {
    allowed(&state, &headers, &user, ApiScope::PolicyRead).await?;
    let n: i64 = n.parse().map_err(|_| AppError::invalid("n", "must be a revision number"))?;
    let keys: Vec<Value> = state.policy.resolve_at(n).await?.iter().map(key_json).collect();
    Ok(Json(json!({ "revision": n, "keys": keys })).into_response())
}

/// `GET /api/v1/audit?key=&actor=&from=&to=&before=&limit=`: the audit log, newest first.
async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
    Query(q): Query<Params>,
) -> Result<Response, AppError> {
    allowed(&state, &headers, &user, ApiScope::AuditRead).await?;
    let filter = crate::policy::audit::AuditFilter::from_fields(
        q.key,
        q.actor,
        q.from,
        q.to,
        q.before,
        Some(q.limit.unwrap_or(100)),
    );
    Ok(Json(state.policy.history(&filter).await?).into_response())
}

/// The caller: a bearer API token when the request carries one, else the session's superuser.
async fn caller(state: &AppState, headers: &HeaderMap, user: Option<&RequestUser>) -> Result<ApiCaller, AppError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return verify_api_token(&state.db, headers).await;
    }
    require_superuser_of(user).map(ApiCaller::session)
}

fn key_json(r: &Resolved) -> Value {
    json!({
        "key": r.key,
        "effective": r.value,
        "source": r.source,
        "provenance": r.provenance(),
        "version": r.admin_version,
        "layers": r.layers,
        "warnings": r.warnings,
        "updated_by": r.updated_by,
        "updated_at": r.updated_at,
        "needs_review": spec(&r.key).is_some_and(|s| s.needs_review()),
    })
}

fn with_etag(status: StatusCode, etag: String, body: Value) -> Response {
    let mut res = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /api/v1/policy`: every key; `ETag` is the policy revision.
async fn read_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
) -> Result<Response, AppError> {
    reader(&state, &headers, user.as_ref().map(|Extension(u)| u)).await?;
    let (stamp, resolved) = state.policy.current().await?;
    let etag = format!("\"r{}\"", stamp.revision);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            res.headers_mut().insert(header::ETAG, v);
        }
        return Ok(res);
    }
    let keys: Vec<Value> = resolved.iter().map(key_json).collect();
    Ok(with_etag(StatusCode::OK, etag, json!({ "revision": stamp.revision, "keys": keys })))
}

fn known(key: &str) -> Result<(), AppError> {
    match spec(key) {
        Some(_) => Ok(()),
        None => Err(AppError::NotFound(unknown_key(key).to_string())),
    }
}

/// `GET /api/v1/policy/{key}`; `ETag` is the key's admin version.
async fn read_key(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
) -> Result<Response, AppError> {
    reader(&state, &headers, user.as_ref().map(|Extension(u)| u)).await?;
    known(&key)?;
    let r = state.policy.resolve_key(&key).await?;
    Ok(with_etag(StatusCode::OK, format!("\"{}\"", r.admin_version), key_json(&r)))
}

/// The version `If-Match` names: `"3"`, `3` or `W/"3"`; 428 without it.
fn if_match(headers: &HeaderMap) -> Result<i64, AppError> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Err(AppError::PreconditionRequired(
            "If-Match is required: send the key's version from its ETag (GET /api/v1/policy/{key})".into(),
        ));
    };
    let text = raw.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
        AppError::invalid("If-Match", format!("must be the key's version from its ETag, such as \"3\", got {text:?}"))
    })
}

/// The body of a write: `{"value": …, "reason": "…"}` (`value` only for PUT).
fn body_fields(body: &Bytes, needs_value: bool) -> Result<(Option<Value>, Option<String>), AppError> {
    let doc: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| AppError::malformed("body", format!("is not valid JSON: {e}")))?
    };
    let Some(obj) = doc.as_object() else {
        return Err(AppError::malformed("body", "must be a JSON object"));
    };
    if let Some(other) = obj.keys().find(|k| !["value", "reason"].contains(&k.as_str())) {
        return Err(AppError::invalid(other, "is not a field here (expected value and reason)"));
    }
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(AppError::invalid("reason", "must be a string")),
    };
    let value = obj.get("value").cloned();
    if needs_value && value.is_none() {
        return Err(AppError::invalid("value", "is required: the key's new value as JSON"));
    }
    Ok((value, reason))
}

/// A write's caller (with policy:write), checked before the key, then the version it names.
async fn writer(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
    user: Option<Extension<RequestUser>>,
) -> Result<(ApiCaller, i64), AppError> {
    let who = allowed(state, headers, &user, ApiScope::PolicyWrite).await?;
    known(key)?;
    Ok((who, if_match(headers)?))
}

/// `PUT /api/v1/policy/{key}` `{value, reason}` with `If-Match`.
async fn write_key(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let (who, version) = writer(&state, &key, &headers, user).await?;
    let (value, reason) = body_fields(&body, true)?;
    let target = Target::Value(value.unwrap_or(Value::Null));
    change(&state.policy, &who, &key, target, version, reason).await
}

/// `DELETE /api/v1/policy/{key}` with `If-Match`: the admin value removed (a reset).
async fn reset_key(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    user: Option<Extension<RequestUser>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let (who, version) = writer(&state, &key, &headers, user).await?;
    let (_, reason) = body_fields(&body, false)?;
    change(&state.policy, &who, &key, Target::Reset, version, reason).await
}

/// One key's change, exactly as from the page: applied in one transaction with its audit row,
/// or a change request (202) for a key that needs review.
async fn change(
    store: &PolicyStore,
    who: &ApiCaller,
    key: &str,
    target: Target,
    version: i64,
    reason: Option<String>,
) -> Result<Response, AppError> {
    let actor = Actor { id: Some(who.user.id), email: who.actor_name() };
    let reviewed = spec(key).is_some_and(|s| s.needs_review());
    let outcome =
        if reviewed {
            let now = store.resolve_key(key).await?;
            if now.admin_version != version {
                return Err(stale(store, key, version).await);
            }
            let set = ChangeSet {
                reason,
                changes: vec![KeyChange { key: key.to_string(), target, expected_version: Some(version) }],
                expected_revision: None,
            };
            match store.propose(&actor, &set, ChangeSetKind::Apply).await? {
                Proposal::Requested { id, .. } => return Ok((
                    StatusCode::ACCEPTED,
                    Json(json!({
                        "change_request": id,
                        "status": "open",
                        "message": format!("{key} needs a second superuser: change request {id} waits for approval"),
                    })),
                )
                    .into_response()),
                Proposal::Applied(ChangeSetOutcome::Applied { .. }) => {
                    WriteOutcome::Changed { version: 0, revision: 0, audit_id: 0 }
                }
                Proposal::Applied(_) => WriteOutcome::Unchanged,
            }
        } else {
            match target {
                Target::Value(v) => store.update(&actor, key, &v, version, reason.as_deref()).await?,
                _ => store.reset(&actor, key, version, reason.as_deref()).await?,
            }
        };
    match outcome {
        WriteOutcome::Conflict(_) => Err(stale(store, key, version).await),
        WriteOutcome::Changed { .. } | WriteOutcome::Unchanged => {
            let r = store.resolve_key(key).await?;
            let changed = !matches!(outcome, WriteOutcome::Unchanged);
            let mut body = key_json(&r);
            body["changed"] = json!(changed);
            Ok(with_etag(StatusCode::OK, format!("\"{}\"", r.admin_version), body))
        }
    }
}

/// 412: the key is no longer at `version`; says who changed it, when and to what.
async fn stale(store: &PolicyStore, key: &str, version: i64) -> AppError {
    match store.resolve_key(key).await {
        Ok(r) => AppError::PreconditionFailed(format!(
            "{key} is at version {}, not {version}: changed by {} at {} to {}",
            r.admin_version,
            r.updated_by.as_deref().unwrap_or("-"),
            r.updated_at.as_deref().unwrap_or("-"),
            r.provenance()
        )),
        Err(e) => e,
    }
}
