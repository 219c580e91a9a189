//! The worker API under `/api/v1/runs`, for callers with a bearer worker token.
//!
//! Every handler checks the token and its scope (runs:create, snapshot:read, runs:work, and the
//! run it is bound to) before it reads anything else, answers errors as JSON
//! `{"error": "...", "field": "..."}` (400 when the body is not JSON, 422 naming the field
//! when a value is not allowed, 401, 403, 404, 409, 413), and never panics on input. A claim
//! belongs to the token that made it: only that token may complete or fail the block.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use serde_json::{json, Map, Value};

use super::claims;
use super::input::{parse_lease, NewBlocks, WorkerName};
use super::server::{self, Creator};
use super::upload::{clean_name, UploadedFile, MAX_FILE_BYTES};
use axum::extract::FromRef;

use super::claims::Holder;
use crate::auth::token::{verify_worker_token, Scope, WorkerToken};
use crate::db::Db;
use crate::error::AppError;
use crate::paths;
use crate::policy::store::PolicyStore;
use crate::policy::value::truncate;

/// The routes, for the router's API table, over any state that holds a [`Db`] and a
/// [`PolicyStore`].
pub fn routes<S>() -> Vec<(&'static str, Method, MethodRouter<S>)>
where
    S: Clone + Send + Sync + 'static,
    Db: FromRef<S>,
    PolicyStore: FromRef<S>,
{
    vec![
        (paths::API_RUNS, Method::POST, post(create_run)),
        (paths::API_RUN_POLICY, Method::GET, get(read_policy)),
        (paths::API_RUN_CLAIMS, Method::POST, post(claim)),
        (paths::API_BLOCK_COMPLETE, Method::POST, post(complete)),
        (paths::API_BLOCK_FAIL, Method::POST, post(fail)),
        (paths::API_RUN, Method::GET, get(progress)),
        (paths::API_RUN_EVENTS, Method::POST, post(report_event)),
        (paths::API_BATCH_COMPLETE, Method::POST, post(complete_batch)),
    ]
}

/// What [`routes`] are, for the OpenAPI document.
pub fn docs() -> Vec<crate::api_doc::RouteDoc> {
    use crate::api_doc::{Caller, RouteDoc};
    vec![
        RouteDoc {
            path: paths::API_RUNS,
            method: Method::POST,
            summary: "Create a run from block texts, or from files sent as multipart/form-data (each part named \
                      `files`, admitted by the effective upload.* keys); the policy is snapshotted in the same \
                      transaction",
            caller: Caller::Worker("runs:create"),
            body: Some("{\"blocks\": [\"text\", …]}"),
            responses: &[
                (201, "{id, snapshot_sha256, policy_revision, block_count}"),
                (400, "not JSON"),
                (401, "no live worker token"),
                (403, "outside the token's scopes"),
                (413, "too large"),
                (422, "a field that is not allowed"),
            ],
        },
        RouteDoc {
            path: paths::API_RUN_POLICY,
            method: Method::GET,
            summary: "A run's policy snapshot (ETag: its SHA-256; 304 on If-None-Match)",
            caller: Caller::Worker("snapshot:read"),
            body: None,
            responses: &[
                (200, "the snapshot"),
                (304, "unchanged"),
                (401, "no live worker token"),
                (403, "outside the token's scopes or run"),
                (404, "no such run"),
                (422, "not a run id"),
            ],
        },
        RouteDoc {
            path: paths::API_RUN_CLAIMS,
            method: Method::POST,
            summary: "Claim blocks of a run in block_index order, under a lease",
            caller: Caller::Worker("runs:work"),
            body: Some("{\"worker\": \"name\", \"lease_seconds\": 300}"),
            responses: &[
                (200, "{blocks, finished, snapshot_sha256}"),
                (401, "no live worker token"),
                (403, "outside the token's scopes or run"),
                (404, "no such run"),
                (422, "a field that is not allowed"),
            ],
        },
        RouteDoc {
            path: paths::API_BLOCK_COMPLETE,
            method: Method::POST,
            summary: "Complete a claimed block with its result",
            caller: Caller::Worker("runs:work"),
            body: Some("{\"worker\", \"attempt\", \"result\"}"),
            responses: &[
                (200, "{state: done}"),
                (401, "no live worker token"),
                (403, "outside the token's scopes or run"),
                (404, "no such block"),
                (409, "not held by this token at this attempt"),
                (422, "a field that is not allowed"),
            ],
        },
        RouteDoc {
            path: paths::API_BLOCK_FAIL,
            method: Method::POST,
            summary: "Fail a claimed block (retried up to the snapshot's worker.max_retries)",
            caller: Caller::Worker("runs:work"),
            body: Some("{\"worker\", \"attempt\", \"error\"}"),
            responses: &[
                (200, "{state: pending or failed}"),
                (401, "no live worker token"),
                (403, "outside the token's scopes or run"),
                (404, "no such block"),
                (409, "not held by this token at this attempt"),
                (422, "a field that is not allowed"),
            ],
        },
        RouteDoc {
            path: paths::API_RUN,
            method: Method::GET,
            summary:
                "A run's progress: counts by state, worker reports by code (count and latest) and the workers seen",
            caller: Caller::Worker("snapshot:read"),
            body: None,
            responses: &[
                (200, "{run, counts, snapshot_sha256, events, workers}"),
                (401, "no live worker token"),
                (403, "outside the token's scopes or run"),
                (404, "no such run"),
                (422, "not a run id"),
            ],
        },
        RouteDoc {
            path: paths::API_RUN_EVENTS,
            method: Method::POST,
            summary: "Report an event on a run (info or warning, e.g. caching_ignored); it never changes a block \
                      or fails the run. At most 1,000 per run and 120 a minute",
            caller: Caller::Worker("runs:work"),
            body: Some("{\"worker\", \"level\": \"info|warning\", \"code\", \"message\", \"block_uid\"?}"),
            responses: &[
                (201, "{id}"),
                (401, "no live worker token"),
                (403, "outside the token's scopes or run"),
                (404, "no such run"),
                (422, "a field that is not allowed"),
                (429, "too many events for this run"),
            ],
        },
        RouteDoc {
            path: paths::API_BATCH_COMPLETE,
            method: Method::POST,
            summary: "Complete a batch: one entry per block of the batch, each with its result or its error; \
                      a block with no entry is failed (and retried)",
            caller: Caller::Worker("runs:work"),
            body: Some("{\"worker\", \"results\": [{\"block_uid\", \"result\" or \"error\"}]}"),
            responses: &[
                (200, "{outcomes: [{block_uid, state, attempts}]}"),
                (401, "no live worker token"),
                (403, "outside the token's scopes or run"),
                (404, "no such batch"),
                (409, "the batch is not held by this token"),
                (422, "a field that is not allowed"),
            ],
        },
    ]
}

/// The caller's token, checked before anything else is read, and the run it names, which
/// the token must be allowed `scope` on.
async fn worker_on_run(
    db: &Db,
    headers: &HeaderMap,
    raw_id: &str,
    scope: Scope,
) -> Result<(WorkerToken, i64), AppError> {
    let token = verify_worker_token(db, headers).await?;
    let id = run_id(raw_id)?;
    token.require(scope, Some(id))?;
    Ok((token, id))
}

/// [`worker_on_run`] for a POST from a worker: also its JSON body and the worker name in it.
async fn worker_post(
    db: &Db,
    headers: &HeaderMap,
    raw_id: &str,
    body: &Bytes,
) -> Result<(WorkerToken, i64, Map<String, Value>, WorkerName), AppError> {
    let (token, id) = worker_on_run(db, headers, raw_id, Scope::RunsWork).await?;
    let body = object(body)?;
    let name = WorkerName::parse(string_field(&body, "worker")?)?;
    Ok((token, id, body, name))
}

fn run_id(raw: &str) -> Result<i64, AppError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AppError::invalid("id", format!("must be a positive integer run id, got \"{}\"", truncate(raw, 60)))),
    }
}

/// The body as a JSON object; an empty body is an empty object.
fn object(body: &Bytes) -> Result<Map<String, Value>, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AppError::malformed("body", "must be a JSON object")),
        Err(e) => Err(AppError::malformed("body", format!("is not valid JSON: {e}"))),
    }
}

fn string_field<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, AppError> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(AppError::invalid(field, "is required")),
        Some(_) => Err(AppError::invalid(field, "must be a string")),
    }
}

fn optional_int(body: &Map<String, Value>, field: &str) -> Result<Option<i64>, AppError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| AppError::invalid(field, "must be an integer")),
    }
}

fn int_field(body: &Map<String, Value>, field: &str) -> Result<i64, AppError> {
    optional_int(body, field)?.ok_or_else(|| AppError::invalid(field, "is required"))
}

/// True when the request carries `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// The files of a `multipart/form-data` upload: every part named `files` (or `file`), in order,
/// each at most [`MAX_FILE_BYTES`]; other parts are ignored.
pub async fn read_files(req: Request) -> Result<Vec<UploadedFile>, AppError> {
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(format!("files: {}", e.body_text()))
        } else {
            AppError::malformed("body", format!("is not a readable multipart/form-data upload: {}", e.body_text()))
        }
    };
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| AppError::malformed("body", format!("must be multipart/form-data: {}", e.body_text())))?;
    let mut files = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(broken)? {
        if !matches!(field.name(), Some("files" | "file")) {
            continue;
        }
        let field_name = format!("files[{}]", files.len());
        let name = match field.file_name() {
            // A form sent with no file chosen has one empty part with an empty name.
            Some("") | None => continue,
            Some(raw) => clean_name(&field_name, raw)?,
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(broken)? {
            if bytes.len() + chunk.len() > MAX_FILE_BYTES {
                return Err(AppError::TooLarge(format!(
                    "files: \"{name}\" is over {MAX_FILE_BYTES} bytes, the most one file may hold"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        files.push(UploadedFile { name, bytes });
    }
    if files.is_empty() {
        return Err(AppError::invalid("files", "needs at least one file (parts named \"files\" with a file name)"));
    }
    Ok(files)
}

/// The whole body, or 413 when it is over the route's limit.
async fn body_bytes(req: Request) -> Result<Bytes, AppError> {
    Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(e.body_text())
        } else {
            AppError::malformed("body", e.body_text())
        }
    })
}

/// `POST /api/v1/runs` with `{"blocks": ["text", ...]}`, or with files as
/// `multipart/form-data`: creates a run (block_index from 0) with its policy snapshot; 201 with
/// its id, snapshot hash and revision.
async fn create_run(State(store): State<PolicyStore>, req: Request) -> Result<Response, AppError> {
    let token = verify_worker_token(&store.db, req.headers()).await?;
    token.require(Scope::RunsCreate, None)?;
    let creator = Creator::token(&token.name);
    if is_multipart(req.headers()) {
        let files = read_files(req).await?;
        let run = server::create_run_from_upload(&store, &creator, files).await?;
        return Ok(created(&run));
    }
    let body = object(&body_bytes(req).await?)?;
    let texts = match body.get("blocks") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(AppError::invalid(&format!("blocks[{i}]"), "must be a string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => return Err(AppError::invalid("blocks", "is required: a list of block texts")),
        Some(_) => return Err(AppError::invalid("blocks", "must be a list of strings")),
    };
    let blocks = NewBlocks::parse("blocks", texts)?;
    let run = server::create_run(&store, &creator, &blocks).await?;
    Ok(created(&run))
}

/// 201 with the run, and where its policy is.
fn created(run: &super::types::CreatedRun) -> Response {
    let location = paths::api_run_policy(run.id);
    let mut res = (StatusCode::CREATED, Json(json!(run))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `POST /app/runs/upload`: the run page's upload form, for a signed-in user. A browser
/// without JavaScript is sent to the new run's page, or back to the list with the error; the
/// page's script (which asks for JSON, to show upload progress) gets 201 with the run or the
/// error as JSON.
pub async fn upload_from_page(
    State(store): State<PolicyStore>,
    user: Option<axum::Extension<crate::auth::session::RequestUser>>,
    req: Request,
) -> Response {
    let wants_json = wants_json(req.headers());
    let user = user.and_then(|axum::Extension(u)| u.0);
    let result = async {
        let user = user.ok_or_else(AppError::unauthenticated)?;
        let files = read_files(req).await?;
        server::create_run_from_upload(&store, &Creator::user(&user), files).await
    }
    .await;
    match result {
        Ok(run) if wants_json => created(&run),
        Ok(run) => axum::response::Redirect::to(&paths::run_href(run.id)).into_response(),
        Err(e) if wants_json => e.into_response(),
        Err(AppError::Unauthenticated(_)) => {
            axum::response::Redirect::to(&paths::login_href(paths::RUNS)).into_response()
        }
        Err(e) => upload_refused_page(&e),
    }
}

/// Whether a request to the page's upload route asked for JSON (the form sent by script) rather
/// than a page (the plain form).
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"))
}

/// A refused upload from the plain form: back to the runs list, which shows the reason.
pub fn upload_refused_page(e: &AppError) -> Response {
    axum::response::Redirect::to(&format!("{}?upload_error={}", paths::RUNS, paths::encode_query(&e.to_string())))
        .into_response()
}

/// `GET /api/v1/runs/{id}/policy`: the snapshot as typed JSON, with `ETag: "<sha256>"`;
/// `If-None-Match` with that tag gets 304.
async fn read_policy(State(db): State<Db>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, AppError> {
    let (_, id) = worker_on_run(&db, &headers, &id, Scope::SnapshotRead).await?;
    let stored = server::snapshot(&db, id).await?;
    let etag = format!("\"{}\"", stored.sha256);
    let etag_value = HeaderValue::from_str(&etag).map_err(|_| AppError::internal())?;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        res.headers_mut().insert(header::ETAG, etag_value);
        return Ok(res);
    }
    let snap = &stored.snapshot;
    let body = json!({
        "run_id": id,
        "policy_revision": snap.policy_revision,
        "snapshot_sha256": stored.sha256,
        "values": snap.values(),
        "keys": snap.keys,
    });
    let mut res = Json(body).into_response();
    res.headers_mut().insert(header::ETAG, etag_value);
    Ok(res)
}

/// `POST /api/v1/runs/{id}/claims` with `{"worker": "name", "lease_seconds": 300}`: the next
/// batch of blocks, sized and ordered by the run's snapshot.
async fn claim(
    State(db): State<Db>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (token, id, body, name) = worker_post(&db, &headers, &id, &body).await?;
    let lease = parse_lease(optional_int(&body, "lease_seconds")?)?;
    // Leases are measured on the database's clock, the one every instance shares.
    let claim = claims::claim(&db, id, Holder { token: token.id, worker: &name }, lease, db.now().await?).await?;
    Ok(Json(json!(claim)).into_response())
}

/// `POST /api/v1/runs/{id}/blocks/{uid}/complete` with `{"worker", "attempt", "result"}`.
async fn complete(
    State(db): State<Db>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (token, id, body, name) = worker_post(&db, &headers, &id, &body).await?;
    let (attempt, result) = (int_field(&body, "attempt")?, string_field(&body, "result")?);
    let out = claims::complete(&db, id, &uid, Holder { token: token.id, worker: &name }, attempt, result).await?;
    Ok(Json(json!(out)).into_response())
}

/// `POST /api/v1/runs/{id}/blocks/{uid}/fail` with `{"worker", "attempt", "error"}`: the block
/// is retried until the snapshot's `worker.max_retries` is used up, then failed.
async fn fail(
    State(db): State<Db>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (token, id, body, name) = worker_post(&db, &headers, &id, &body).await?;
    let (attempt, error) = (int_field(&body, "attempt")?, string_field(&body, "error")?);
    let out = claims::fail(&db, id, &uid, Holder { token: token.id, worker: &name }, attempt, error).await?;
    Ok(Json(json!(out)).into_response())
}

/// `GET /api/v1/runs/{id}`: counts by state, worker reports and the workers seen.
async fn progress(State(db): State<Db>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, AppError> {
    let (_, id) = worker_on_run(&db, &headers, &id, Scope::SnapshotRead).await?;
    Ok(Json(json!(server::run_progress(&db, id).await?)).into_response())
}

fn optional_string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, AppError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AppError::invalid(field, "must be a string")),
    }
}

/// `POST /api/v1/runs/{id}/events` with `{"worker", "level", "code", "message", "block_uid"?}`.
async fn report_event(
    State(db): State<Db>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (token, id, body, name) = worker_post(&db, &headers, &id, &body).await?;
    let event = super::events::NewEvent::parse(
        string_field(&body, "level")?,
        string_field(&body, "code")?,
        string_field(&body, "message")?,
        optional_string(&body, "block_uid")?,
    )?;
    let event_id = super::events::record(&db, id, Holder { token: token.id, worker: &name }, &event).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": event_id }))).into_response())
}

/// `POST /api/v1/runs/{id}/batches/{batch_id}/complete` with
/// `{"worker", "results": [{"block_uid", "result"} or {"block_uid", "error"}]}`.
async fn complete_batch(
    State(db): State<Db>,
    Path((id, batch_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (token, id, body, name) = worker_post(&db, &headers, &id, &body).await?;
    let items = match body.get("results") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Err(AppError::invalid("results", "is required: one entry per block")),
        Some(_) => return Err(AppError::invalid("results", "must be a list")),
    };
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("results[{i}]");
        let Value::Object(item) = item else {
            return Err(AppError::invalid(&field, "must be an object with block_uid and result or error"));
        };
        let uid = string_field(item, "block_uid")
            .map_err(|_| AppError::invalid(&format!("{field}.block_uid"), "must be a string"))?;
        let outcome = match (optional_string(item, "result"), optional_string(item, "error")) {
            (Ok(Some(r)), Ok(None)) => Ok(r.to_string()),
            (Ok(None), Ok(Some(e))) => Err(e.to_string()),
            _ => return Err(AppError::invalid(&field, "needs exactly one of result or error, as a string")),
        };
        entries.push(claims::BatchEntry { block_uid: uid.to_string(), outcome });
    }
    let outcomes =
        claims::complete_batch(&db, id, &batch_id, Holder { token: token.id, worker: &name }, &entries).await?;
    Ok(Json(json!({ "outcomes": outcomes })).into_response())
}
