//! Request body limits, set per route, and axum's own rejections (a body over the limit, a path
//! or query that does not parse, an unknown server function) answered in the JSON error form.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use crate::error::AppError;
use leptos::server_fn::ServerFn;

use crate::paths;
use crate::runs::api::CreateRun;

/// A new run's text, through the page or the worker API: 10,000 blocks fit, up to this size.
pub const RUN_BODY: usize = 16 << 20;
/// Files uploaded to create a run (multipart/form-data): their limit, with room for the
/// form's own framing.
pub const UPLOAD_BODY: usize = crate::runs::upload::MAX_UPLOAD_BYTES + (1 << 20);
/// A block's result (at most 1,000,000 characters, JSON-escaped).
pub const RESULT_BODY: usize = 8 << 20;
/// Every other server function: the largest is a provider registry or a prompt.
pub const FORM_BODY: usize = 1 << 20;
/// Everything else (claims, failures, pages).
pub const SMALL_BODY: usize = 64 << 10;

/// The most bytes a request to `path` may carry.
pub fn body_limit(path: &str) -> usize {
    if path == <CreateRun as ServerFn>::PATH || path == paths::API_RUNS {
        RUN_BODY
    } else if path.starts_with("/api/v1/") && path.ends_with("/complete") {
        RESULT_BODY
    } else if path.starts_with("/api/") && !path.starts_with("/api/v1/") {
        FORM_BODY
    } else {
        SMALL_BODY
    }
}

fn too_large(limit: usize) -> AppError {
    AppError::TooLarge(format!("The request body is over the {limit} bytes accepted here."))
}

/// The most bytes of a refused page upload read (and dropped) so that the browser shows the
/// answer; a larger one gets it at once, which a browser may show as a connection error.
const DRAIN_MAX: u64 = 256 << 20;

fn upload_too_large() -> AppError {
    use crate::runs::upload::{MAX_FILE_BYTES, MAX_UPLOAD_BYTES};
    AppError::TooLarge(format!(
        "files: the upload is over {} MiB; at most {} MiB in all and {} MiB per file",
        MAX_UPLOAD_BYTES >> 20,
        MAX_UPLOAD_BYTES >> 20,
        MAX_FILE_BYTES >> 20
    ))
}

/// The most bytes `req` may carry: [`body_limit`] of its path, or [`UPLOAD_BODY`] for files.
pub fn request_limit(req: &Request) -> usize {
    let path = req.uri().path();
    if path == paths::RUNS_UPLOAD || (path == paths::API_RUNS && crate::runs::http::is_multipart(req.headers())) {
        UPLOAD_BODY
    } else {
        body_limit(path)
    }
}

/// The length a request declares for its body, if it declares one.
pub fn declared_length(req: &Request) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
}

/// How long a body may go without a byte before the request is refused: a request with a body
/// may run longer than the usual time limit (an upload over a slow link), but not idle.
pub const BODY_IDLE: Duration = Duration::from_secs(30);

/// Refuses a body whose declared length is over the route's limit before anything reads it,
/// and stops reading one that grows past it or sends nothing for [`BODY_IDLE`].
pub async fn limit_bodies(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let limit = request_limit(&req);
    let declared = declared_length(&req);
    if declared.is_some_and(|n| n > limit as u64) {
        // The plain upload form (no JavaScript) gets the runs page with the reason, not JSON.
        if path == paths::RUNS_UPLOAD && !crate::runs::http::wants_json(req.headers()) {
            // A browser still sending when the answer comes shows a connection error, not the
            // answer: read the rest and drop it first (nothing is kept), up to a bound.
            if declared.is_some_and(|n| n <= DRAIN_MAX) {
                let mut body = IdleLimited::new(req.into_body(), BODY_IDLE);
                while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {}
            }
            return crate::runs::http::upload_refused_page(&upload_too_large());
        }
        return too_large(limit).into_response();
    }
    let req = req.map(|body| Body::new(IdleLimited::new(http_body_util::Limited::new(body, limit), BODY_IDLE)));
    let res = next.run(req).await;
    as_json_error(res, limit).await
}

/// A body that fails when no bytes arrive for `idle`.
struct IdleLimited<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleLimited<B> {
    fn new(inner: B, idle: Duration) -> Self {
        IdleLimited { inner, idle, timer: Box::pin(tokio::time::sleep(idle)) }
    }
}

impl<B> HttpBody for IdleLimited<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "the request body sent nothing for {} s and was stopped",
                    this.idle.as_secs()
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An error answer that is plain text (axum's extractors, the server function router) becomes
/// the JSON error form with the same status.
async fn as_json_error(res: Response, limit: usize) -> Response {
    let status = res.status();
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return res;
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(limit).into_response();
    }
    let text = axum::body::to_bytes(res.into_body(), 4096).await.unwrap_or_default();
    let message = crate::db::one_line(&String::from_utf8_lossy(&text));
    let error = AppError::from_answer(status.as_u16(), &[]).map_message(|_| message);
    let mut out = error.into_response();
    *out.status_mut() = status;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_has_its_limit() {
        assert_eq!(body_limit("/api/create_run"), RUN_BODY);
        assert_eq!(body_limit("/api/v1/runs"), RUN_BODY);
        assert_eq!(body_limit("/api/v1/runs/3/blocks/r3-b0/complete"), RESULT_BODY);
        assert_eq!(body_limit("/api/save_policy"), FORM_BODY);
        assert_eq!(body_limit("/api/v1/runs/3/claims"), SMALL_BODY);
        assert_eq!(body_limit("/login"), SMALL_BODY);
    }

    /// One chunk, then nothing ever again.
    struct GoesSilent(Option<Bytes>);

    impl HttpBody for GoesSilent {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_goes_silent_is_stopped_and_a_whole_one_is_not() {
        use http_body_util::BodyExt;
        let idle = Duration::from_millis(50);
        let mut body = IdleLimited::new(GoesSilent(Some(Bytes::from_static(b"abc"))), idle);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        let started = std::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(started.elapsed() >= idle);
        assert_eq!(err.to_string(), "the request body sent nothing for 0 s and was stopped");
        let whole = IdleLimited::new(Body::from("all of it"), idle).collect().await.unwrap().to_bytes();
        assert_eq!(whole, "all of it");
    }
}
