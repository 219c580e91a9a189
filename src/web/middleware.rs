//! The layers every request goes through, outermost first: the same-origin check, sessions,
//! loading the signed-in user, then the server function and page guards (deny by default).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use tower_sessions::Session;

use crate::auth::api::{CurrentUser, FirstSuperuser, Login, Logout, SetupState};
use crate::auth::session::{session_user, RequestUser};
use crate::auth::types::Role;
use crate::error::AppError;
use crate::paths::{is_settings_page, login_href};
use crate::state::AppState;

/// Wraps the app's routes in the layers that need a session, outermost first: same-origin
/// check, sessions, loading the user, the server function and page guards, then the kept
/// settings pages.
pub fn session_layers(router: Router, state: &AppState) -> Router {
    let pages = super::page_cache::PageCache::new(state.policy.clone());
    let router = router
        .layer(axum::middleware::from_fn_with_state(pages, super::page_cache::kept_pages))
        .layer(axum::middleware::from_fn(guard_pages))
        .layer(axum::middleware::from_fn(guard_server_fns))
        .layer(axum::middleware::from_fn_with_state(state.clone(), load_user));
    let router = state.auth.sessions.layer(router, state.auth.settings.cookie_secure);
    router.layer(axum::middleware::from_fn_with_state(state.clone(), same_origin_only))
}

/// Wraps everything (static files included) in the layers every answer goes through,
/// outermost first: the request log (and id), security headers, compression, body limits.
pub fn edge_layers(router: Router, state: &AppState) -> Router {
    router
        .layer(axum::middleware::from_fn(super::limits::limit_bodies))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::compression::CompressionLayer::new().br(true).gzip(true))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::headers::security_headers))
        .layer(axum::middleware::from_fn_with_state(state.db.metrics.clone(), super::request_log::log_requests))
}

/// Loads the signed-in user from the database on every request (so a disabled user is out at
/// their next request) and stores it as [`RequestUser`].
async fn load_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let user = match req.extensions().get::<Session>().cloned() {
        Some(s) => match session_user(&state.db, &s).await {
            Ok(u) => u,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    if let Some(u) = &user {
        tracing::Span::current().record("user", u.id);
    }
    req.extensions_mut().insert(RequestUser(user));
    next.run(req).await
}

/// The superuser pages: anonymous visitors go to `/login?next=<path>`; a member gets the page's
/// 403 rendering with status 403.
async fn guard_pages(req: Request, next: Next) -> Response {
    if !is_settings_page(req.uri().path()) {
        return next.run(req).await;
    }
    let user = req.extensions().get::<RequestUser>().and_then(|u| u.0.clone());
    match user {
        None => {
            let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            Redirect::to(&login_href(target)).into_response()
        }
        Some(u) if u.role == Role::Superuser => next.run(req).await,
        Some(_) => {
            let mut res = next.run(req).await;
            *res.status_mut() = StatusCode::FORBIDDEN;
            res
        }
    }
}

/// Paths of the server functions that anonymous visitors may call.
pub fn public_server_fn_paths() -> [&'static str; 5] {
    use leptos::server_fn::ServerFn;
    // First-run setup: the printed token is the credential.
    [Login::PATH, Logout::PATH, CurrentUser::PATH, SetupState::PATH, FirstSuperuser::PATH]
}

/// Every registered server function: path and HTTP method. New ones appear here on their own.
pub fn server_fn_paths() -> Vec<(&'static str, Method)> {
    let mut v: Vec<_> = leptos::server_fn::axum::server_fn_paths().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// Deny by default: every server function except the public few needs a signed-in user before
/// its arguments are even read (each function then checks the role itself).
async fn guard_server_fns(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let is_server_fn = leptos::server_fn::axum::server_fn_paths().any(|(p, _)| p == path);
    if is_server_fn && !public_server_fn_paths().contains(&path) {
        let signed_in = req.extensions().get::<RequestUser>().is_some_and(|u| u.0.is_some());
        if !signed_in {
            return AppError::unauthenticated().into_response();
        }
    }
    next.run(req).await
}

/// A request that can change state (anything but GET, HEAD, OPTIONS) must come from this site.
/// `Origin` decides when present; otherwise `Sec-Fetch-Site`; a client that sends neither
/// (curl, a worker) is not a browser acting for someone else and passes.
async fn same_origin_only(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || is_same_site_for(req.headers(), state.auth.settings.public_origin.as_deref()) {
        next.run(req).await
    } else {
        AppError::Forbidden("Cross-site requests are refused.".into()).into_response()
    }
}

/// True unless the headers say the request comes from another site.
pub fn is_same_site(headers: &HeaderMap) -> bool {
    is_same_site_for(headers, None)
}

/// Like [`is_same_site`], with `Origin` compared to the configured public origin when there is
/// one (behind a proxy the `Host` header may name the proxy's upstream instead).
pub fn is_same_site_for(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else { return false };
        if let Some(public) = public_origin {
            return origin.trim_end_matches('/').eq_ignore_ascii_case(public);
        }
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        return match (origin_host, host) {
            (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
            _ => false,
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_checks() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(is_same_site(&h(&[("host", "a.test:3000"), ("origin", "http://a.test:3000")])));
        assert!(!is_same_site(&h(&[("host", "a.test:3000"), ("origin", "https://evil.example")])));
        assert!(!is_same_site(&h(&[("host", "a.test:3000"), ("origin", "null")])));
        assert!(!is_same_site(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_same_site(&h(&[("sec-fetch-site", "same-site")])));
        assert!(is_same_site(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(is_same_site(&h(&[])));
        // Behind a proxy that rewrites Host, the configured public origin decides.
        let proxied = h(&[("host", "127.0.0.1:3000"), ("origin", "https://policy.example.com")]);
        assert!(!is_same_site(&proxied));
        assert!(is_same_site_for(&proxied, Some("https://policy.example.com")));
        assert!(!is_same_site_for(&h(&[("origin", "https://evil.example")]), Some("https://policy.example.com")));
    }
}
