//! The one error type. Every server function, HTTP handler and CLI command returns [`AppError`].
//!
//! - `Display` is the sentence a person reads, nothing in front of it.
//! - [`AppError::status_code`] is the HTTP status; [`AppError::field`] names the input at fault.
//! - Over HTTP it travels as JSON `{"error", "field", "status"}` (and `retry_after` for 429),
//!   both from server functions and from the worker API, and is rebuilt from that on the client.
//! - A database error is logged with its detail and shown as an opaque internal error; a
//!   unique violation is a field error instead.
//! - [`AppError::exit`] is the CLI's exit code.

use serde::{Deserialize, Serialize};

/// The sentence of every internal error: the detail is in the server log, never in the answer.
pub const INTERNAL_MESSAGE: &str = "Internal error; the server log has the details.";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(into = "Wire", from = "Wire")]
pub enum AppError {
    /// 422: a value that is not allowed. `message` is the whole sentence and names the field.
    #[error("{message}")]
    Field { field: String, message: String },
    /// 400: a request that cannot be read at all (not JSON, a missing or repeated argument).
    #[error("{message}")]
    Malformed { field: Option<String>, message: String },
    /// 401: no valid session or token, or wrong credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: signed in, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing (or not one the caller may see).
    #[error("{0}")]
    NotFound(String),
    /// 409: the state changed under the caller (a lost claim, a stale version).
    #[error("{0}")]
    Conflict(String),
    /// 412: a write whose `If-Match` names a version that is no longer current.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 428: a write that must name the version it was made against (`If-Match`) and did not.
    #[error("{0}")]
    PreconditionRequired(String),
    /// 413: more than the server accepts in one request.
    #[error("{0}")]
    TooLarge(String),
    /// 429, with the seconds to wait in `Retry-After`.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    /// 503: a service this one needs does not answer (the database, the server the worker
    /// talks to).
    #[error("{0}")]
    Unavailable(String),
    /// A setting the process was started with is wrong; the message names the variable.
    #[error("{0}")]
    Config(String),
    /// 500: a fault of ours; shown as [`INTERNAL_MESSAGE`].
    #[error("{0}")]
    Internal(String),
}

/// How a CLI command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// Anything but bad input: a conflict, the database, the network.
    Failure = 1,
    /// Bad input (an argument, a value, a name that does not exist); nothing was written.
    Usage = 2,
}

impl AppError {
    /// A field error whose message is `field: detail`.
    pub fn invalid(field: &str, detail: impl std::fmt::Display) -> AppError {
        AppError::Field { field: field.to_string(), message: format!("{field}: {detail}") }
    }

    /// A field error with a whole sentence of its own (which names the field).
    pub fn field(field: &str, message: impl Into<String>) -> AppError {
        AppError::Field { field: field.to_string(), message: message.into() }
    }

    /// A malformed request; the message is `field: detail`.
    pub fn malformed(field: &str, detail: impl std::fmt::Display) -> AppError {
        AppError::Malformed { field: Some(field.to_string()), message: format!("{field}: {detail}") }
    }

    pub fn unauthenticated() -> AppError {
        AppError::Unauthenticated("Sign in first.".into())
    }

    pub fn invalid_credentials() -> AppError {
        AppError::Unauthenticated("Wrong email or password.".into())
    }

    pub fn forbidden() -> AppError {
        AppError::Forbidden("This needs a superuser.".into())
    }

    pub fn throttled(retry_after_secs: u64) -> AppError {
        AppError::TooManyRequests {
            message: format!("Too many failed sign-ins; try again in {retry_after_secs} seconds."),
            retry_after_secs,
        }
    }

    pub fn busy() -> AppError {
        AppError::TooManyRequests {
            message: "The server is busy signing people in; try again in a moment.".into(),
            retry_after_secs: 1,
        }
    }

    /// A fault of ours. Inside a request the sentence names the request's id, which is in the
    /// request's log line and in the log line of the fault.
    pub fn internal() -> AppError {
        #[cfg(feature = "ssr")]
        if let Some(id) = crate::request_id::current() {
            return AppError::Internal(format!(
                "Internal error; the server log has the details under request id {id}."
            ));
        }
        AppError::Internal(INTERNAL_MESSAGE.into())
    }

    pub fn status_code(&self) -> u16 {
        match self {
            AppError::Field { .. } => 422,
            AppError::Malformed { .. } => 400,
            AppError::Unauthenticated(_) => 401,
            AppError::Forbidden(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::PreconditionFailed(_) => 412,
            AppError::PreconditionRequired(_) => 428,
            AppError::TooLarge(_) => 413,
            AppError::TooManyRequests { .. } => 429,
            AppError::Unavailable(_) => 503,
            AppError::Config(_) | AppError::Internal(_) => 500,
        }
    }

    /// The input the error is about, when there is one.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            AppError::Field { field, .. } => Some(field),
            AppError::Malformed { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The exit code of a CLI command that failed with this error.
    pub fn exit(&self) -> Exit {
        match self {
            AppError::Field { .. } | AppError::Malformed { .. } | AppError::NotFound(_) => Exit::Usage,
            _ => Exit::Failure,
        }
    }

    /// The same error with its sentence rewritten (to say where it happened, for instance).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> AppError {
        match self {
            AppError::Field { field, message } => AppError::Field { field, message: f(message) },
            AppError::Malformed { field, message } => AppError::Malformed { field, message: f(message) },
            AppError::Unauthenticated(m) => AppError::Unauthenticated(f(m)),
            AppError::Forbidden(m) => AppError::Forbidden(f(m)),
            AppError::NotFound(m) => AppError::NotFound(f(m)),
            AppError::Conflict(m) => AppError::Conflict(f(m)),
            AppError::PreconditionFailed(m) => AppError::PreconditionFailed(f(m)),
            AppError::PreconditionRequired(m) => AppError::PreconditionRequired(f(m)),
            AppError::TooLarge(m) => AppError::TooLarge(f(m)),
            AppError::TooManyRequests { message, retry_after_secs } => {
                AppError::TooManyRequests { message: f(message), retry_after_secs }
            }
            AppError::Unavailable(m) => AppError::Unavailable(f(m)),
            AppError::Config(m) => AppError::Config(f(m)),
            AppError::Internal(m) => AppError::Internal(f(m)),
        }
    }

    /// The error a client rebuilds from an HTTP answer: its status and its JSON body (or, when
    /// the body is not ours, its first 200 characters).
    pub fn from_answer(status: u16, body: &[u8]) -> AppError {
        match serde_json::from_slice::<Wire>(body) {
            Ok(mut wire) => {
                wire.status = status;
                wire.into()
            }
            Err(_) => Wire {
                error: format!(
                    "the server answered {status}: {}",
                    String::from_utf8_lossy(body).chars().take(200).collect::<String>()
                ),
                field: None,
                status,
                retry_after: None,
            }
            .into(),
        }
    }
}

/// The JSON form of an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wire {
    error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(default = "internal_status")]
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

fn internal_status() -> u16 {
    500
}

impl From<AppError> for Wire {
    fn from(e: AppError) -> Wire {
        Wire {
            error: e.to_string(),
            field: e.field_name().map(str::to_string),
            status: e.status_code(),
            retry_after: e.retry_after(),
        }
    }
}

impl From<Wire> for AppError {
    fn from(w: Wire) -> AppError {
        let m = w.error;
        match w.status {
            422 => AppError::Field { field: w.field.unwrap_or_default(), message: m },
            400 => AppError::Malformed { field: w.field, message: m },
            401 => AppError::Unauthenticated(m),
            403 => AppError::Forbidden(m),
            404 => AppError::NotFound(m),
            409 => AppError::Conflict(m),
            412 => AppError::PreconditionFailed(m),
            428 => AppError::PreconditionRequired(m),
            413 => AppError::TooLarge(m),
            429 => AppError::TooManyRequests { message: m, retry_after_secs: w.retry_after.unwrap_or(1) },
            502..=504 => AppError::Unavailable(m),
            _ => AppError::Internal(m),
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

// ---------------------------------------------------------------------------------------------
// Server functions

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use leptos::server_fn::{Bytes, Encodes};

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// What the framework reports: arguments it cannot read are the caller's fault (400); a
    /// request that never got an answer means the server is out of reach.
    fn from_server_fn_error(e: ServerFnErrorErr) -> Self {
        match e {
            // The body limit of the route (web/limits.rs) stopped the read.
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::Deserialization(m) | ServerFnErrorErr::Request(m)
                if m.contains("length limit exceeded") =>
            {
                AppError::TooLarge("The request body is over the size accepted here.".into())
            }
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::Deserialization(m) => {
                AppError::Malformed { field: None, message: format!("The request could not be read: {m}") }
            }
            ServerFnErrorErr::MissingArg(m) => {
                AppError::Malformed { field: Some(m.clone()), message: format!("{m}: is required") }
            }
            ServerFnErrorErr::UnsupportedRequestMethod(m) => AppError::Malformed { field: None, message: m },
            ServerFnErrorErr::Request(m) | ServerFnErrorErr::Response(m) => {
                AppError::Unavailable(format!("The server could not be reached ({m}); try again."))
            }
            other => {
                #[cfg(feature = "ssr")]
                tracing::error!(error = %other, "server function failed");
                #[cfg(not(feature = "ssr"))]
                let _ = other;
                AppError::internal()
            }
        }
    }

    /// The one place an error becomes a server function's answer: the status (and
    /// `Retry-After`) go on the response, except for a form posted without JavaScript, which
    /// keeps its redirect back to the page so the browser shows the error there.
    fn ser(&self) -> Bytes {
        #[cfg(feature = "ssr")]
        ssr::set_response_status(self);
        <JsonEncoding as Encodes<AppError>>::encode(self).unwrap_or_else(|_| {
            Bytes::from_static(b"{\"error\":\"Internal error; the server log has the details.\",\"status\":500}")
        })
    }
}

#[cfg(feature = "ssr")]
pub use ssr::is_plain_form_post;

#[cfg(feature = "ssr")]
mod ssr {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::Json;
    use leptos::prelude::use_context;

    use super::{AppError, Wire};

    impl AppError {
        pub fn status(&self) -> StatusCode {
            StatusCode::from_u16(self.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }

    /// True when the current server function call is an HTML form submitted without JavaScript.
    pub fn is_plain_form_post() -> bool {
        use_context::<axum::http::request::Parts>()
            .and_then(|p| p.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(|v| v.contains("text/html")))
            .unwrap_or(false)
    }

    pub(super) fn set_response_status(e: &AppError) {
        if is_plain_form_post() {
            return;
        }
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(e.status());
            if let Some(secs) = e.retry_after() {
                res.insert_header(header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
    }

    impl IntoResponse for AppError {
        fn into_response(self) -> Response {
            let status = self.status();
            let retry = self.retry_after();
            let mut res = (status, Json(Wire::from(self))).into_response();
            if let Some(secs) = retry {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            if status == StatusCode::UNAUTHORIZED {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            res
        }
    }

    /// The column a unique violation is about, from the constraint name (PostgreSQL:
    /// `users_email_key`) or the message (SQLite: `UNIQUE constraint failed: users.email`).
    fn unique_column(e: &dyn sqlx::error::DatabaseError) -> String {
        if let Some(c) = e.constraint() {
            let c = c.strip_suffix("_key").unwrap_or(c);
            return c.split_once('_').map(|(_, col)| col).unwrap_or(c).to_string();
        }
        e.message()
            .rsplit(": ")
            .next()
            .and_then(|cols| cols.split(',').next())
            .and_then(|c| c.trim().rsplit('.').next())
            .unwrap_or("value")
            .to_string()
    }

    /// True when `e` is a unique violation (two writers racing for one name).
    fn is_unique_violation(e: &sqlx::Error) -> bool {
        e.as_database_error().is_some_and(|d| d.is_unique_violation())
    }

    /// `taken()` when `e` is a unique violation (the writer lost a race for a name), else the
    /// error as usual.
    pub fn taken_or(taken: impl FnOnce() -> AppError) -> impl FnOnce(sqlx::Error) -> AppError {
        move |e| if is_unique_violation(&e) { taken() } else { e.into() }
    }

    impl From<sqlx::Error> for AppError {
        fn from(e: sqlx::Error) -> Self {
            if let Some(d) = e.as_database_error().filter(|d| d.is_unique_violation()) {
                let column = unique_column(d);
                tracing::info!(error = %e, "unique violation");
                return AppError::invalid(&column, "this value is already taken");
            }
            // PostgreSQL gave up one of two transactions that waited on each other (a deadlock or
            // a serialization failure): nothing was written, and the same request may succeed
            // when sent again, so it is a 503 that clients retry, not an internal error.
            if let Some(code) = e.as_database_error().and_then(|d| d.code()).filter(|c| c == "40P01" || c == "40001") {
                tracing::warn!(error = %e, code = %code, request_id = crate::request_id::current(), "transaction aborted by the database; retryable");
                return AppError::Unavailable(
                    "The database aborted this change to resolve a conflict with another; send it again.".into(),
                );
            }
            match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                    tracing::error!(error = %e, request_id = crate::request_id::current(), "database unavailable");
                    AppError::Unavailable("The database is not answering; try again in a moment.".into())
                }
                e => {
                    tracing::error!(error = %e, request_id = crate::request_id::current(), "database error");
                    AppError::internal()
                }
            }
        }
    }

    impl From<tower_sessions::session::Error> for AppError {
        fn from(e: tower_sessions::session::Error) -> Self {
            tracing::error!(error = %e, request_id = crate::request_id::current(), "session store error");
            AppError::internal()
        }
    }
}

#[cfg(feature = "ssr")]
pub use ssr::taken_or;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_their_json_form() {
        for e in [
            AppError::invalid("text", "is empty"),
            AppError::malformed("body", "is not valid JSON"),
            AppError::unauthenticated(),
            AppError::forbidden(),
            AppError::NotFound("no run 4".into()),
            AppError::Conflict("held by a".into()),
            AppError::TooLarge("too big".into()),
            AppError::throttled(30),
            AppError::Unavailable("down".into()),
            AppError::internal(),
        ] {
            let json = serde_json::to_string(&e).unwrap();
            assert!(json.contains(&format!("\"error\":{}", serde_json::to_string(&e.to_string()).unwrap())), "{json}");
            let back: AppError = serde_json::from_str(&json).unwrap();
            assert_eq!(back, e);
            assert_eq!(AppError::from_answer(e.status_code(), json.as_bytes()), e);
        }
    }

    #[test]
    fn the_sentence_is_the_whole_message() {
        let e = AppError::invalid("EMAIL", "must look like name@example.com");
        assert_eq!(e.to_string(), "EMAIL: must look like name@example.com");
        assert_eq!((e.status_code(), e.field_name(), e.exit()), (422, Some("EMAIL"), Exit::Usage));
        assert_eq!(AppError::forbidden().to_string(), "This needs a superuser.");
        assert_eq!(AppError::internal().exit(), Exit::Failure);
        assert_eq!(AppError::throttled(9).retry_after(), Some(9));
        let e = AppError::from_server_fn_error(ServerFnErrorErr::Args("missing field `key`".into()));
        assert_eq!(e.status_code(), 400);
        assert!(!e.to_string().contains("server function"), "{e}");
    }

    #[test]
    fn an_answer_that_is_not_ours_keeps_its_status() {
        let e = AppError::from_answer(502, b"<html>bad gateway</html>");
        assert!(matches!(e, AppError::Unavailable(_)), "{e:?}");
        assert!(e.to_string().contains("502"));
    }
}
