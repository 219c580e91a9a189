//! The reference worker: reads a run's snapshot over the API, claims batches of blocks and
//! "processes" each by rendering the snapshot's `worker.default_block_prompt` with the block's
//! text. It calls no model (that is outside this product); the rendered prompt is stored as the
//! block's result, so anyone can see which snapshot a block was processed under.
//!
//! The HTTP client is a minimal HTTP/1.1 one over hyper (plain `http://` only), enough for a
//! worker that sits next to the server or behind a TLS-terminating proxy on its host.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::snapshot::{render_block_prompt, Snapshot};
use super::types::{BlockOutcome, Claim};
use crate::error::AppError;
use crate::paths;

/// What the worker needs to run.
#[derive(Clone)]
pub struct WorkerConfig {
    /// `http://host:port`, optionally with a path prefix.
    pub server: String,
    pub token: String,
    pub run_id: i64,
    /// The name claims are made under.
    pub name: String,
    /// The lease each claim asks for (`None`: the server's default).
    pub lease_seconds: Option<i64>,
    /// How long to wait before claiming again when nothing is claimable but the run is not
    /// finished (other workers still hold blocks whose leases may expire).
    pub idle_wait: Duration,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .field("run_id", &self.run_id)
            .field("name", &self.name)
            .field("lease_seconds", &self.lease_seconds)
            .finish()
    }
}

/// What a worker did, for its caller (and the tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerReport {
    pub snapshot_sha256: String,
    /// The size of every non-empty batch, in claim order.
    pub batches: Vec<usize>,
    /// `(block_uid, block_index)` of every block this worker completed.
    pub completed: Vec<(String, i64)>,
}

/// A small client for the worker API.
#[derive(Clone)]
pub struct ApiClient {
    authority: String,
    prefix: String,
    token: String,
}

/// A response: status, ETag and the body.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            AppError::Internal(format!("the server answered {} with a body that does not parse: {e}", self.status))
        })
    }

    /// The answer when it has the status `want`; otherwise the server's error, rebuilt from its
    /// status and JSON body, saying what was being done.
    fn expect(self, want: StatusCode, what: &str) -> Result<ApiResponse, AppError> {
        if self.status == want {
            return Ok(self);
        }
        let status = self.status;
        Err(AppError::from_answer(status.as_u16(), &self.body).map_message(|m| {
            let m = m.strip_prefix(&format!("the server answered {}: ", status.as_u16())).unwrap_or(&m).to_string();
            format!("{what}: the server answered {status}: {m}")
        }))
    }
}

impl ApiClient {
    pub fn new(server: &str, token: &str) -> Result<ApiClient, AppError> {
        let rest = server.trim().strip_prefix("http://").ok_or_else(|| {
            AppError::invalid(
                "--server",
                format!("must start with http:// (the reference worker speaks plain HTTP), got \"{server}\""),
            )
        })?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(AppError::invalid("--server", format!("expected http://HOST:PORT, got \"{server}\"")));
        }
        if token.is_empty() || token.contains(['\r', '\n']) {
            return Err(AppError::invalid("--token", "must be a worker token (runtime-policy token create NAME)"));
        }
        Ok(ApiClient { authority: authority.to_string(), prefix: prefix.to_string(), token: token.to_string() })
    }

    fn address(&self) -> String {
        if self.authority.starts_with('[')
            || self.authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            self.authority.clone()
        } else {
            format!("{}:80", self.authority)
        }
    }

    /// One request on its own connection.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<ApiResponse, AppError> {
        self.send_with(method, path, body, &[]).await
    }

    /// [`ApiClient::send`] with extra headers (`If-None-Match`, for instance).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<ApiResponse, AppError> {
        let io_err = |e: std::io::Error| AppError::Unavailable(format!("cannot reach {}: {e}", self.authority));
        let stream = tokio::net::TcpStream::connect(self.address()).await.map_err(io_err)?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| AppError::Unavailable(format!("HTTP handshake with {} failed: {e}", self.authority)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let bytes = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(bytes)).map_err(|e| AppError::Internal(format!("bad request: {e}")))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| AppError::Unavailable(format!("request to {} failed: {e}", self.authority)))?;
        let status = res.status();
        let etag = res.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| AppError::Unavailable(format!("reading the answer from {} failed: {e}", self.authority)))?
            .to_bytes();
        Ok(ApiResponse { status, etag, body })
    }

    /// The run's snapshot and its ETag (the snapshot's SHA-256).
    pub async fn snapshot(&self, run_id: i64) -> Result<(Snapshot, String), AppError> {
        let res = self.send(Method::GET, &paths::api_run_policy(run_id), None).await?;
        let res = res.expect(StatusCode::OK, "reading the run's policy")?;
        let etag = res.etag.clone().unwrap_or_default().trim_matches('"').to_string();
        let body: Value = res.json()?;
        let snapshot: Snapshot = serde_json::from_value(json!({
            "policy_revision": body.get("policy_revision").cloned().unwrap_or(Value::Null),
            "keys": body.get("keys").cloned().unwrap_or(Value::Null),
        }))
        .map_err(|e| AppError::Internal(format!("the run's policy does not parse: {e}")))?;
        Ok((snapshot, etag))
    }

    pub async fn claim(&self, run_id: i64, worker: &str, lease_seconds: Option<i64>) -> Result<Claim, AppError> {
        let mut body = json!({ "worker": worker });
        if let Some(s) = lease_seconds {
            body["lease_seconds"] = json!(s);
        }
        let res = self.send(Method::POST, &paths::api_run_claims(run_id), Some(&body)).await?;
        res.expect(StatusCode::OK, "claiming blocks")?.json()
    }

    pub async fn complete(
        &self,
        run_id: i64,
        uid: &str,
        worker: &str,
        attempt: i64,
        result: &str,
    ) -> Result<BlockOutcome, AppError> {
        let body = json!({ "worker": worker, "attempt": attempt, "result": result });
        let path = paths::api_block_complete(run_id, uid);
        self.send(Method::POST, &path, Some(&body)).await?.expect(StatusCode::OK, "completing a block")?.json()
    }

    pub async fn fail(
        &self,
        run_id: i64,
        uid: &str,
        worker: &str,
        attempt: i64,
        error: &str,
    ) -> Result<BlockOutcome, AppError> {
        let body = json!({ "worker": worker, "attempt": attempt, "error": error });
        let path = paths::api_block_fail(run_id, uid);
        self.send(Method::POST, &path, Some(&body)).await?.expect(StatusCode::OK, "failing a block")?.json()
    }
}

/// What the reference worker does with one block: the snapshot's block prompt, rendered.
pub fn process_block(snapshot: &Snapshot, block_text: &str) -> String {
    render_block_prompt(&snapshot.block_prompt(), block_text)
}

/// Runs the reference worker until every block of the run is done or failed.
pub async fn run(config: &WorkerConfig) -> Result<WorkerReport, AppError> {
    let client = ApiClient::new(&config.server, &config.token)?;
    let (snapshot, sha) = client.snapshot(config.run_id).await?;
    let mut report = WorkerReport { snapshot_sha256: sha.clone(), ..Default::default() };
    loop {
        let claim = client.claim(config.run_id, &config.name, config.lease_seconds).await?;
        if !sha.is_empty() && claim.snapshot_sha256 != sha {
            // Cannot happen while the database refuses snapshot updates; stop rather than mix.
            return Err(AppError::Conflict(format!(
                "run {}: the snapshot changed under the worker ({sha} → {})",
                config.run_id, claim.snapshot_sha256
            )));
        }
        if claim.blocks.is_empty() {
            if claim.finished {
                return Ok(report);
            }
            tokio::time::sleep(config.idle_wait).await;
            continue;
        }
        report.batches.push(claim.blocks.len());
        for block in &claim.blocks {
            let result = process_block(&snapshot, &block.text);
            match client.complete(config.run_id, &block.block_uid, &config.name, block.attempt, &result).await {
                Ok(_) => report.completed.push((block.block_uid.clone(), block.block_index)),
                // The lease ran out and another worker holds the block now: it is theirs.
                Err(e @ AppError::Conflict(_)) => {
                    tracing::warn!(run = config.run_id, block = %block.block_uid, "lost the claim: {e}");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_checked() {
        let c = ApiClient::new("http://127.0.0.1:3000/", "t").unwrap();
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str(), c.address()),
            ("127.0.0.1:3000", "", "127.0.0.1:3000".into())
        );
        let c = ApiClient::new("http://example.test/base/", "t").unwrap();
        assert_eq!((c.address(), c.prefix.as_str()), ("example.test:80".to_string(), "/base"));
        for bad in ["https://x", "x:1", "http://", "http://u@x"] {
            assert!(ApiClient::new(bad, "t").is_err(), "{bad}");
        }
        assert!(ApiClient::new("http://x:1", "").is_err());
    }
}
