//! Rendered settings pages kept per policy stamp: a superuser's page is rendered once per
//! (address, user, policy stamp, env warning) and answered again from memory, with a fresh CSP
//! nonce, until any policy write (through any instance) changes the stamp.
//!
//! Why this is safe: the page's content is a function of the address, the signed-in user, the
//! policy at the stamp read before rendering (the same argument as `policy/cache.rs`: what is
//! rendered after reading stamp `s` is at `s` or newer, and a newer stamp never matches `s`
//! again) and the instances' env warning; the render is otherwise deterministic (checked by a
//! test that renders twice). The per-response nonce is the only per-request part, and it is
//! replaced. This layer sits inside the session, user and guard layers, so every request still
//! loads its session and user (a disabled user is out at once) and passes the guard; only 200
//! answers to superusers, without a `Set-Cookie` and without an error on the page
//! ([`RENDER_ERROR_ATTR`]), are kept. The audit section is not kept: its
//! filters make an unbounded set of addresses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_SECURITY_POLICY, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::page_csp;
use crate::auth::session::RequestUser;
use crate::paths::is_settings_page;
use crate::policy::cache::Stamp;
use crate::policy::store::PolicyStore;
use crate::settings::section_of_path;
use crate::settings::types::Section;
use crate::ui::RENDER_ERROR_ATTR;

/// At most this many pages are kept at one stamp (addresses differ by their query string).
const MAX_PAGES: usize = 256;
/// A page larger than this is answered but not kept.
const MAX_PAGE_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PageKey {
    path_and_query: String,
    user_id: i64,
    user_email: String,
    env_warning: Option<String>,
}

struct Page {
    headers: HeaderMap,
    /// The body split at each occurrence of the nonce.
    parts: Vec<Bytes>,
}

#[derive(Default)]
struct Kept {
    stamp: Stamp,
    pages: HashMap<PageKey, Arc<Page>>,
}

/// The pages kept, shared by every request of this server.
#[derive(Clone)]
pub struct PageCache {
    store: PolicyStore,
    kept: Arc<Mutex<Kept>>,
}

impl PageCache {
    pub fn new(store: PolicyStore) -> PageCache {
        PageCache { store, kept: Arc::default() }
    }

    fn get(&self, stamp: &Stamp, key: &PageKey) -> Option<Arc<Page>> {
        let kept = self.kept.lock().ok()?;
        (kept.stamp == *stamp).then(|| kept.pages.get(key).cloned()).flatten()
    }

    fn keep(&self, stamp: Stamp, key: PageKey, page: Page) {
        let Ok(mut kept) = self.kept.lock() else { return };
        if kept.stamp != stamp {
            // Another stamp starts over, an older one included (as in `policy/cache.rs`).
            *kept = Kept { stamp, pages: HashMap::new() };
        }
        if kept.pages.len() >= MAX_PAGES {
            kept.pages.clear();
        }
        kept.pages.insert(key, Arc::new(page));
    }
}

/// The sections whose page may be kept: the area itself and each key category.
fn is_kept_path(path: &str) -> bool {
    is_settings_page(path) && matches!(section_of_path(path), Some(Section::Keys(_)))
}

/// The nonce of a page's answer, from its CSP header.
fn nonce_of(headers: &HeaderMap) -> Option<String> {
    let csp = headers.get(CONTENT_SECURITY_POLICY)?.to_str().ok()?;
    let start = csp.find("'nonce-")? + "'nonce-".len();
    let len = csp[start..].find('\'')?;
    Some(csp[start..start + len].to_string()).filter(|n| n.len() >= 16)
}

fn fresh_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn answer(page: &Page) -> Response {
    let nonce = fresh_nonce();
    let mut body = Vec::with_capacity(page.parts.iter().map(Bytes::len).sum::<usize>() + 64);
    for (i, part) in page.parts.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(nonce.as_bytes());
        }
        body.extend_from_slice(part);
    }
    let mut res = Response::new(Body::from(body));
    *res.headers_mut() = page.headers.clone();
    if let Ok(csp) = HeaderValue::from_str(&page_csp(&nonce)) {
        res.headers_mut().insert(CONTENT_SECURITY_POLICY, csp);
    }
    res
}

pub async fn kept_pages(State(cache): State<PageCache>, req: Request, next: Next) -> Response {
    let user = req.extensions().get::<RequestUser>().and_then(|u| u.0.clone());
    let superuser = user.filter(|u| u.is_superuser());
    let (Some(user), true) = (superuser, req.method() == Method::GET && is_kept_path(req.uri().path())) else {
        return next.run(req).await;
    };
    // The stamp first: a page rendered after reading it is at that stamp or newer.
    let Ok(stamp) = cache.store.stamp().await else {
        return next.run(req).await;
    };
    let key = PageKey {
        path_and_query: req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default(),
        user_id: user.id,
        user_email: user.email,
        env_warning: cache.store.env_warning.get(),
    };
    if let Some(page) = cache.get(&stamp, &key) {
        return answer(&page);
    }

    let res = next.run(req).await;
    if res.status() != StatusCode::OK || res.headers().contains_key(SET_COOKIE) {
        return res;
    }
    let Some(nonce) = nonce_of(res.headers()) else { return res };
    let (parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(b) => b,
        // Over the size kept, or a body that failed mid-way: answer it as an error, never as
        // a cut page.
        Err(e) => {
            tracing::error!(error = %e, "a settings page could not be read whole");
            return crate::error::AppError::internal().into_response();
        }
    };
    // A page rendered with an error (a failed load) is answered once, never kept.
    if let Some(text) = std::str::from_utf8(&bytes).ok().filter(|t| !t.contains(RENDER_ERROR_ATTR)) {
        let pieces = text.split(nonce.as_str()).map(|s| Bytes::copy_from_slice(s.as_bytes())).collect();
        let mut headers = parts.headers.clone();
        // The fresh nonce may differ in length.
        headers.remove(CONTENT_LENGTH);
        cache.keep(stamp, key, Page { headers, parts: pieces });
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_sections_are_kept() {
        assert!(is_kept_path("/app/settings/superuser"));
        assert!(is_kept_path("/app/settings/superuser/"));
        assert!(is_kept_path("/app/settings/superuser/worker"));
        assert!(!is_kept_path("/app/settings/superuser/audit"));
        assert!(!is_kept_path("/app/settings/superuser/nope"));
        assert!(!is_kept_path("/app/settings/superuserx"));
        assert!(!is_kept_path("/app/runs"));
    }

    #[test]
    fn the_nonce_comes_from_the_csp_and_each_answer_gets_a_new_one() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_str(&page_csp("abcdefghijklmnopqrstuv")).unwrap());
        assert_eq!(nonce_of(&h).as_deref(), Some("abcdefghijklmnopqrstuv"));
        let page = Page { headers: h, parts: vec![Bytes::from("<a n=\""), Bytes::from("\">"), Bytes::from("")] };
        let one = answer(&page);
        let n1 = nonce_of(one.headers()).unwrap();
        let n2 = nonce_of(answer(&page).headers()).unwrap();
        assert_ne!(n1, n2);
        assert_ne!(n1, "abcdefghijklmnopqrstuv");
    }
}
