//! The id of the request being served, so that a person who reads "Internal error" can hand
//! over something that finds the server's log line. The request log (`web/request_log.rs`)
//! gives every request one: a well-formed `x-request-id` from the client (or a proxy), else a
//! random one; it comes back in the answer's `x-request-id`.

use leptos::prelude::use_context;

/// The request's id, in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

tokio::task_local! {
    static CURRENT: String;
}

impl RequestId {
    /// The id a client sent, when it is 1 to 64 characters of `[A-Za-z0-9._-]`; else a new one.
    pub fn from_header(sent: Option<&str>) -> RequestId {
        match sent.filter(|s| {
            (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }) {
            Some(s) => RequestId(s.to_string()),
            None => RequestId(hex::encode(rand::random::<[u8; 8]>())),
        }
    }

    /// Runs `f` with this id as the current one (for code that has no Leptos context).
    pub async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CURRENT.scope(self.0, f).await
    }
}

/// The id of the request being served: from the Leptos context inside a server function or a
/// page render, else from the request log's scope; `None` outside a request (the CLI).
pub fn current() -> Option<String> {
    use_context::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<RequestId>().map(|r| r.0.clone()))
        .or_else(|| CURRENT.try_with(|id| id.clone()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_id_is_kept_only_when_well_formed() {
        assert_eq!(RequestId::from_header(Some("abc-123_x.y")).0, "abc-123_x.y");
        for bad in ["", "has space", "new\nline", &"x".repeat(65), "ü"] {
            let id = RequestId::from_header(Some(bad)).0;
            assert_ne!(id, bad);
            assert_eq!(id.len(), 16);
        }
        assert_ne!(RequestId::from_header(None), RequestId::from_header(None));
    }
}
