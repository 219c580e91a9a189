//! One log line per request (target `http`): method, route template (never the raw path or
//! query, which may carry a token), status, duration, request id and the signed-in user's id;
//! never a header, a cookie or a body. Every line logged while the request is served carries
//! its id (the `request` span), and the id goes back in `x-request-id`. The same facts feed
//! the request counter and latency histogram of `/metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::request_id::RequestId;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn log_requests(State(metrics): State<Metrics>, mut req: Request, next: Next) -> Response {
    let id = RequestId::from_header(req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()));
    req.extensions_mut().insert(id.clone());
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    // `user` is filled in by the user-loading layer once the session is read.
    let span = tracing::info_span!("request", id = %id.0, user = tracing::field::Empty);
    let started = Instant::now();
    let mut res = id.clone().scope(next.run(req)).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = res.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    let ms = seconds * 1000.0;
    // Counted by route template only: a raw path would make a series per run id.
    metrics.request(method.as_str(), route.as_deref().unwrap_or("unmatched"), status, seconds);
    span.in_scope(|| {
        if status == 403 {
            // Every refusal (a guard, a role or scope check, a cross-site request) in one place.
            tracing::warn!(target: "security", method = %method, route = route.as_deref().unwrap_or("-"), "permission refused");
        }
        tracing::info!(target: "http", method = %method, route = route.as_deref().unwrap_or("-"), status, ms = format!("{ms:.1}"), "request");
    });
    res
}
