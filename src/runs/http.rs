//! The worker API under `/api/v1/runs`, for callers with a bearer worker token.
//!
//! Every handler checks the token before it reads anything else, answers errors as JSON
//! `{"error": "...", "field": "..."}` (400 when the body is not JSON, 422 naming the field
//! when a value is not allowed, 401, 404, 409), and never panics on input.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::server::{self, Creator, NewBlocks, RunError, WorkerName};
use crate::auth::server::{verify_worker_token, AuthError, WorkerToken};
use crate::server::AppState;

pub const RUNS_PATH: &str = "/api/v1/runs";
pub const POLICY_PATH: &str = "/api/v1/runs/{id}/policy";
pub const CLAIMS_PATH: &str = "/api/v1/runs/{id}/claims";
pub const COMPLETE_PATH: &str = "/api/v1/runs/{id}/blocks/{uid}/complete";
pub const FAIL_PATH: &str = "/api/v1/runs/{id}/blocks/{uid}/fail";

/// The routes, for `crate::server::api_routes`.
pub fn routes() -> Vec<(&'static str, Method, MethodRouter<AppState>)> {
    vec![
        (RUNS_PATH, Method::POST, post(create_run)),
        (POLICY_PATH, Method::GET, get(read_policy)),
        (CLAIMS_PATH, Method::POST, post(claim)),
        (COMPLETE_PATH, Method::POST, post(complete)),
        (FAIL_PATH, Method::POST, post(fail)),
    ]
}

/// An API error as JSON with its status.
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        ApiError { status: e.status(), field: e.field().map(str::to_string), message: e.to_string() }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = match &e {
            AuthError::Unauthenticated => "a live worker token is required: Authorization: Bearer <token>".to_string(),
            other => other.to_string(),
        };
        ApiError { status: e.status(), message, field: None }
    }
}

async fn worker(state: &AppState, headers: &HeaderMap) -> Result<WorkerToken, ApiError> {
    Ok(verify_worker_token(&state.db, headers).await?)
}

fn run_id(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(RunError::invalid("id", format!("must be a positive integer run id, got \"{}\"", short(raw))).into()),
    }
}

fn short(s: &str) -> String {
    crate::policy::value::truncate(s, 60)
}

/// The body as a JSON object; an empty body is an empty object.
fn object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(RunError::Malformed("must be a JSON object".into()).into()),
        Err(e) => Err(RunError::Malformed(format!("is not valid JSON: {e}")).into()),
    }
}

fn string_field<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(RunError::invalid(field, "is required").into()),
        Some(_) => Err(RunError::invalid(field, "must be a string").into()),
    }
}

fn optional_int(body: &Map<String, Value>, field: &str) -> Result<Option<i64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| RunError::invalid(field, "must be an integer").into()),
    }
}

fn int_field(body: &Map<String, Value>, field: &str) -> Result<i64, ApiError> {
    optional_int(body, field)?.ok_or_else(|| RunError::invalid(field, "is required").into())
}

/// `POST /api/v1/runs` with `{"blocks": ["text", ...]}`: creates a run (block_index from 0)
/// with its policy snapshot; 201 with its id, snapshot hash and revision.
async fn create_run(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let token = worker(&state, &headers).await?;
    let body = object(&body)?;
    let texts = match body.get("blocks") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(ApiError::from(RunError::invalid(&format!("blocks[{i}]"), "must be a string"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => return Err(RunError::invalid("blocks", "is required: a list of block texts").into()),
        Some(_) => return Err(RunError::invalid("blocks", "must be a list of strings").into()),
    };
    let blocks = NewBlocks::parse("blocks", texts)?;
    let run = server::create_run(&state.policy, &Creator::token(&token.name), &blocks).await?;
    let location = format!("{RUNS_PATH}/{}/policy", run.id);
    let mut res = (StatusCode::CREATED, Json(json!(run))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /api/v1/runs/{id}/policy`: the snapshot as typed JSON, with `ETag: "<sha256>"`;
/// `If-None-Match` with that tag gets 304.
async fn read_policy(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    worker(&state, &headers).await?;
    let id = run_id(&id)?;
    let stored = server::snapshot(&state.db, id).await?;
    let etag = format!("\"{}\"", stored.sha256);
    let etag_value = HeaderValue::from_str(&etag).map_err(|_| ApiError::from(RunError::Internal))?;
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
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    worker(&state, &headers).await?;
    let id = run_id(&id)?;
    let body = object(&body)?;
    let name = WorkerName::parse(string_field(&body, "worker")?)?;
    let lease = server::parse_lease(optional_int(&body, "lease_seconds")?)?;
    let claim = server::claim(&state.db, id, &name, lease, Utc::now()).await?;
    Ok(Json(json!(claim)).into_response())
}

/// The fields of a block report: the worker, the attempt it holds, and the text named `text`.
fn report<'a>(body: &'a Map<String, Value>, text: &str) -> Result<(WorkerName, i64, &'a str), ApiError> {
    let name = WorkerName::parse(string_field(body, "worker")?)?;
    Ok((name, int_field(body, "attempt")?, string_field(body, text)?))
}

/// `POST /api/v1/runs/{id}/blocks/{uid}/complete` with `{"worker", "attempt", "result"}`.
async fn complete(
    State(state): State<AppState>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    worker(&state, &headers).await?;
    let id = run_id(&id)?;
    let body = object(&body)?;
    let (name, attempt, result) = report(&body, "result")?;
    let out = server::complete(&state.db, id, &uid, &name, attempt, result).await?;
    Ok(Json(json!(out)).into_response())
}

/// `POST /api/v1/runs/{id}/blocks/{uid}/fail` with `{"worker", "attempt", "error"}`: the block
/// is retried until the snapshot's `worker.max_retries` is used up, then failed.
async fn fail(
    State(state): State<AppState>,
    Path((id, uid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    worker(&state, &headers).await?;
    let id = run_id(&id)?;
    let body = object(&body)?;
    let (name, attempt, error) = report(&body, "error")?;
    let out = server::fail(&state.db, id, &uid, &name, attempt, error).await?;
    Ok(Json(json!(out)).into_response())
}
