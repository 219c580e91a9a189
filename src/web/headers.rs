//! Security headers on every response: no framing, no sniffing, no referrer to other sites, a
//! strict Content-Security-Policy (pages send their own, with a nonce), nothing signed-in kept
//! in a cache, and HSTS when the site is served over TLS.

use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// For answers that are not pages (server functions, the API, files): nothing may run or load.
const STRICT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const COOP: HeaderName = HeaderName::from_static("cross-origin-opener-policy");

/// Files every visitor gets alike (the wasm bundle, the stylesheet, the icon): the only
/// answers that may be cached.
fn is_static_file(path: &str) -> bool {
    path.starts_with("/pkg/") || path == "/favicon.svg"
}

/// Files under a bundle folder named by its content hash (`pkg/<hash>/`): they never change.
fn is_immutable_file(path: &str, pkg_dir: &str) -> bool {
    pkg_dir != "pkg"
        && path.strip_prefix('/').and_then(|p| p.strip_prefix(pkg_dir)).is_some_and(|rest| rest.starts_with('/'))
}

pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let cacheable = is_static_file(req.uri().path());
    let immutable = is_immutable_file(req.uri().path(), &state.leptos_options.site_pkg_dir);
    let mut res = next.run(req).await;
    // A 404 under /pkg/ (an old bundle's file) must not be kept.
    let kept = res.status().is_success() || res.status() == axum::http::StatusCode::NOT_MODIFIED;
    let h = res.headers_mut();
    if !h.contains_key(CONTENT_SECURITY_POLICY) {
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(STRICT_CSP));
    }
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(COOP, HeaderValue::from_static("same-origin"));
    if !cacheable || !kept {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else if immutable {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
        // The same address answers br, gzip or plain bytes: a shared cache must key on it.
        h.insert(axum::http::header::VARY, HeaderValue::from_static("accept-encoding"));
    } else {
        // A file whose name carries no content hash (the icon, a bundle built without one): a
        // browser keeps a copy and asks whether it changed (Last-Modified).
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if state.auth.settings.cookie_secure {
        h.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    res
}
