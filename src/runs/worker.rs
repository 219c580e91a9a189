//! The reference worker: reads a run's snapshot over the API, claims blocks and "processes"
//! them through the built-in provider (`provider.rs`), which renders the request a model would
//! get (the snapshot's model, temperature, max tokens, system prompt and
//! `worker.default_block_prompt` with each block's text) and answers each block with its
//! rendered prompt. It calls no model (that is outside this product); the rendered prompt is
//! stored as the block's result, so anyone can see which snapshot a block was processed under.
//!
//! When the claim packs blocks into batches (the snapshot's `worker.batching.enabled`), each
//! batch is one provider call and one batch completion. When the snapshot enables prompt caching
//! and the provider reports that it did not apply it, the worker reports a `caching_ignored`
//! warning on the run, once, and carries on: a warning never fails a run.
//!
//! The HTTP client is reqwest over rustls (HTTP or HTTPS; the system's root certificates plus an
//! optional extra CA file), with connect and read timeouts, and retries with exponential backoff
//! and jitter after connection errors and 502, 503 and 504 answers, never after any other answer.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::provider::{BuiltinProvider, ModelRequest};
use super::snapshot::{render_block_prompt, Snapshot};
use super::types::{BatchOutcome, BlockOutcome, BlockState, Claim, ClaimedBlock};
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
    /// Timeouts, retries and trust for the HTTP client.
    pub client: ClientOptions,
    /// The built-in provider answers as one that does not apply prompt caching.
    pub provider_ignores_caching: bool,
}

/// How the worker's HTTP client connects, waits and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Longest wait for a connection (TCP and TLS) to open.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read_timeout: Duration,
    /// How many times a request is sent again after a connection error or a 502/503/504.
    pub retries: u32,
    /// The first retry waits about this long, each further one about twice as long as the one
    /// before, up to [`MAX_BACKOFF`] (see [`backoff_delay`]).
    pub backoff: Duration,
    /// A PEM file of CA certificates trusted besides the system's.
    pub ca_cert: Option<PathBuf>,
}

/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            retries: 5,
            backoff: Duration::from_millis(250),
            ca_cert: None,
        }
    }
}

/// The wait before retry number `retry` (1 for the first): `backoff × 2^(retry−1)`, raised to
/// the server's `Retry-After` when it asked for longer, capped at [`MAX_BACKOFF`], and then drawn
/// uniformly from its upper half (`jitter` is a number in `[0, 1)`). Workers that failed
/// together do not all come back in the same millisecond, and none retries at once.
pub fn backoff_delay(backoff: Duration, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exp = backoff.saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(20)));
    let wait = exp.max(retry_after.unwrap_or_default()).min(MAX_BACKOFF);
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
    wait / 2 + (wait / 2).mul_f64(jitter)
}

/// Whether an answer with this status is worth sending again: a gateway, or the server, said it
/// cannot answer now. Every other answer, a 4xx above all, is the answer.
pub fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
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
    /// Provider calls made (one per batch when batching, else one per block).
    pub provider_calls: usize,
    /// Warnings reported on the run (`caching_ignored`).
    pub warnings: Vec<String>,
}

/// A client for the worker API.
#[derive(Clone)]
pub struct ApiClient {
    /// `scheme://host[:port]` and the path prefix, without a trailing slash.
    base: String,
    token: String,
    http: reqwest::Client,
    options: ClientOptions,
}

/// A response: status, ETag and the body.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub etag: Option<String>,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
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
    /// A client with the default timeouts and retries.
    pub fn new(server: &str, token: &str) -> Result<ApiClient, AppError> {
        ApiClient::with_options(server, token, ClientOptions::default())
    }

    /// Checks the address, the token and the CA file and builds the client; nothing is sent.
    pub fn with_options(server: &str, token: &str, options: ClientOptions) -> Result<ApiClient, AppError> {
        let base = server_base(server)?;
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(AppError::invalid("token", "must be a worker token (runtime-policy token create NAME)"));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("runtime-policy-worker/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &options.ca_cert {
            for cert in read_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| AppError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(ApiClient { base, token: token.to_string(), http, options })
    }

    /// One request; sent again after a connection error or a 502/503/504, as the client's
    /// [`ClientOptions`] say.
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
        let bytes = match body {
            Some(v) => Some(Bytes::from(
                serde_json::to_vec(v).map_err(|e| AppError::Internal(format!("cannot encode the request: {e}")))?,
            )),
            None => None,
        };
        let url = format!("{}{path}", self.base);
        let mut retry = 0;
        loop {
            let (why, retry_after) = match self.once(&method, &url, bytes.clone(), headers).await {
                Ok(res) if retryable_status(res.status) && retry < self.options.retries => {
                    (format!("the server answered {}", res.status), res.retry_after)
                }
                Ok(res) => return Ok(res),
                // A connection that never opened carried nothing, so any request may go again
                // (unless TLS refused it: a certificate does not fix itself). A read that timed
                // out may have been acted on: only a GET is sent again.
                Err(e)
                    if ((e.is_connect() && !is_tls_failure(&e)) || (e.is_timeout() && method == Method::GET))
                        && retry < self.options.retries =>
                {
                    (describe(&e), None)
                }
                Err(e) => {
                    let tries = if retry == 0 { String::new() } else { format!(" (tried {} times)", retry + 1) };
                    return Err(AppError::Unavailable(format!(
                        "{method} {}{path} failed{tries}: {}",
                        self.base,
                        describe(&e)
                    )));
                }
            };
            retry += 1;
            let wait = backoff_delay(self.options.backoff, retry, retry_after, rand::random::<f64>());
            tracing::warn!(
                %method,
                path,
                retry,
                of = self.options.retries,
                wait_ms = wait.as_millis() as u64,
                "{why}; sending again"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn once(
        &self,
        method: &Method,
        url: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<ApiResponse, reqwest::Error> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        if let Some(bytes) = body {
            req = req.header(header::CONTENT_TYPE, "application/json").body(bytes);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await?;
        let status = res.status();
        let text = |name| res.headers().get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
        let etag = text(header::ETAG).map(str::to_string);
        let retry_after = text(header::RETRY_AFTER).and_then(|v| v.trim().parse().ok()).map(Duration::from_secs);
        let body = res.bytes().await?;
        Ok(ApiResponse { status, etag, retry_after, body })
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

    /// Completes a batch with one entry per block.
    pub async fn complete_batch(
        &self,
        run_id: i64,
        batch_id: &str,
        worker: &str,
        results: &[(String, String)],
    ) -> Result<Vec<BatchOutcome>, AppError> {
        let results: Vec<Value> =
            results.iter().map(|(uid, result)| json!({ "block_uid": uid, "result": result })).collect();
        let body = json!({ "worker": worker, "results": results });
        let path = paths::api_batch_complete(run_id, batch_id);
        let res = self.send(Method::POST, &path, Some(&body)).await?.expect(StatusCode::OK, "completing a batch")?;
        let body: Value = res.json()?;
        serde_json::from_value(body.get("outcomes").cloned().unwrap_or(Value::Null))
            .map_err(|e| AppError::Internal(format!("a batch completion's answer does not parse: {e}")))
    }

    /// Reports an event on a run.
    pub async fn event(
        &self,
        run_id: i64,
        worker: &str,
        level: &str,
        code: &str,
        message: &str,
        block_uid: Option<&str>,
    ) -> Result<(), AppError> {
        let body =
            json!({ "worker": worker, "level": level, "code": code, "message": message, "block_uid": block_uid });
        self.send(Method::POST, &paths::api_run_events(run_id), Some(&body))
            .await?
            .expect(StatusCode::CREATED, "reporting an event")?;
        Ok(())
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

/// `http://` or `https://`, a host, an optional port and path prefix, and nothing else; returned
/// without a trailing slash.
fn server_base(server: &str) -> Result<String, AppError> {
    let bad = |why: &str| AppError::invalid("--server", format!("{why}, got \"{server}\""));
    let url = reqwest::Url::parse(server.trim()).map_err(|_| bad("expected http://HOST:PORT or https://HOST"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry a user name or password (the token authenticates)"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or a fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The certificates of a PEM file, refused when it cannot be read or holds none.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, AppError> {
    let bad = |why: String| AppError::invalid("--ca-cert", why);
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| bad(format!("{} is not a PEM certificate file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(format!("{} holds no certificate (-----BEGIN CERTIFICATE-----)", path.display())));
    }
    Ok(certs)
}

/// Whether TLS refused the connection (an untrusted or mismatched certificate, a protocol
/// failure): a rustls error in the chain, itself or wrapped in I/O errors (whose `source` skips
/// what they wrap).
fn is_tls_failure(e: &reqwest::Error) -> bool {
    fn is_rustls(e: &(dyn std::error::Error + 'static)) -> bool {
        e.is::<rustls::Error>()
            || e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).is_some_and(|inner| is_rustls(inner))
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if is_rustls(cause) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The error and its causes on one line (reqwest's own message names only the outermost).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() && !e.is_connect() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "the request failed"
    }
    .to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// What the reference worker does with one block: the snapshot's block prompt, rendered.
pub fn process_block(snapshot: &Snapshot, block_text: &str) -> String {
    render_block_prompt(&snapshot.block_prompt(), block_text)
}

/// Runs the reference worker until every block of the run is done or failed.
pub async fn run(config: &WorkerConfig) -> Result<WorkerReport, AppError> {
    let client = ApiClient::with_options(&config.server, &config.token, config.client.clone())?;
    let (snapshot, sha) = client.snapshot(config.run_id).await?;
    let provider = BuiltinProvider { ignores_caching: config.provider_ignores_caching };
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
        // The claim's batches, or each block on its own when the snapshot does not batch.
        let groups: Vec<(Option<&str>, Vec<&ClaimedBlock>)> = if claim.batches.is_empty() {
            claim.blocks.iter().map(|b| (None, vec![b])).collect()
        } else {
            claim
                .batches
                .iter()
                .map(|batch| {
                    let members = batch
                        .block_uids
                        .iter()
                        .filter_map(|uid| claim.blocks.iter().find(|b| &b.block_uid == uid))
                        .collect();
                    (Some(batch.batch_id.as_str()), members)
                })
                .collect()
        };
        for (batch_id, members) in groups {
            let texts: Vec<&str> = members.iter().map(|b| b.text.as_str()).collect();
            let request = ModelRequest::render(&snapshot, &texts);
            let reply = provider.call(&request);
            report.provider_calls += 1;
            if reply.cache_applied == Some(false) && report.warnings.is_empty() {
                warn_caching_ignored(&client, config, members.first().map(|b| b.block_uid.as_str()), &mut report).await;
            }
            match batch_id {
                Some(batch_id) => {
                    let results: Vec<(String, String)> =
                        members.iter().map(|b| b.block_uid.clone()).zip(reply.outputs.iter().cloned()).collect();
                    match client.complete_batch(config.run_id, batch_id, &config.name, &results).await {
                        Ok(outcomes) => {
                            for o in outcomes.iter().filter(|o| o.state == Some(BlockState::Done)) {
                                if let Some(b) = members.iter().find(|b| b.block_uid == o.block_uid) {
                                    report.completed.push((b.block_uid.clone(), b.block_index));
                                }
                            }
                        }
                        // Every lease of the batch ran out and other workers hold its blocks now.
                        Err(e @ (AppError::Conflict(_) | AppError::NotFound(_))) => {
                            tracing::warn!(run = config.run_id, batch = batch_id, "lost the batch: {e}");
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => {
                    let block = members[0];
                    let result = reply.outputs.first().cloned().unwrap_or_default();
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
    }
}

/// Reports that the provider did not apply prompt caching. A report that cannot be sent is
/// logged and the run goes on: a warning never fails a run.
async fn warn_caching_ignored(
    client: &ApiClient,
    config: &WorkerConfig,
    block: Option<&str>,
    report: &mut WorkerReport,
) {
    let message = "The provider did not apply prompt caching to the system prompt; requests go on uncached.";
    match client.event(config.run_id, &config.name, "warning", "caching_ignored", message, block).await {
        Ok(()) => report.warnings.push("caching_ignored".into()),
        Err(e) => tracing::warn!(run = config.run_id, "could not report caching_ignored: {e}"),
    }
    tracing::warn!(run = config.run_id, "{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_checked() {
        let c = ApiClient::new("http://127.0.0.1:3000/", "t").unwrap();
        assert_eq!(c.base, "http://127.0.0.1:3000");
        let c = ApiClient::new("https://example.test/base/", "t").unwrap();
        assert_eq!(c.base, "https://example.test/base");
        for bad in ["ftp://x", "x:1", "http://", "http://u@x", "http://x/?a=1", "http://x/#f", "http://x:99999"] {
            let e = ApiClient::new(bad, "t").err().unwrap_or_else(|| panic!("{bad} was taken"));
            assert!(e.to_string().contains("--server"), "{bad}: {e}");
        }
        for bad in ["", "a b", "a\nb", "tök"] {
            assert!(ApiClient::new("http://x:1", bad).is_err(), "{bad:?}");
        }
        let e = ApiClient::with_options(
            "http://x:1",
            "t",
            ClientOptions { ca_cert: Some("/no/such/ca.pem".into()), ..Default::default() },
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("--ca-cert") && e.to_string().contains("/no/such/ca.pem"), "{e}");
    }

    #[test]
    fn backoff_doubles_keeps_its_upper_half_and_is_capped() {
        let base = Duration::from_millis(250);
        // The lowest and highest draw for each retry.
        let span =
            |retry, after| (backoff_delay(base, retry, after, 0.0), backoff_delay(base, retry, after, 0.999_999));
        assert_eq!(span(1, None).0, Duration::from_millis(125));
        assert!(span(1, None).1 < Duration::from_millis(250) && span(1, None).1 > Duration::from_millis(249));
        assert_eq!(span(2, None).0, Duration::from_millis(250));
        assert_eq!(span(3, None).0, Duration::from_millis(500));
        // Capped, however many retries (no overflow either).
        for retry in [7, 8, 40, u32::MAX] {
            assert_eq!(span(retry, None).0, MAX_BACKOFF / 2, "{retry}");
            assert!(span(retry, None).1 <= MAX_BACKOFF, "{retry}");
        }
        // The server's Retry-After lengthens the wait, never past the cap.
        assert_eq!(span(1, Some(Duration::from_secs(4))).0, Duration::from_secs(2));
        assert_eq!(span(1, Some(Duration::from_secs(3600))).0, MAX_BACKOFF / 2);
        // A nonsense jitter is clamped.
        assert_eq!(backoff_delay(base, 1, None, f64::NAN), Duration::from_millis(125));
        assert_eq!(backoff_delay(base, 1, None, 7.0), Duration::from_millis(250));
    }

    #[test]
    fn only_gateway_answers_are_retried() {
        for code in [502, 503, 504] {
            assert!(retryable_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [200, 400, 401, 403, 404, 409, 413, 422, 429, 500, 501, 505] {
            assert!(!retryable_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
