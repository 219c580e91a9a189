//! The walking skeleton: database, migrations, health and the server-rendered page.

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use crate::helpers::TestDb;
use runtime_policy::web::router;
use tower::ServiceExt;

async fn get(db: &TestDb, path: &str) -> (StatusCode, Option<String>, String) {
    let app = router(db.state().await);
    let res = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, location, String::from_utf8_lossy(&body).into_owned())
}

on_both_backends!(migrations_are_idempotent_and_health_answers, |t| {
    t.db.migrate().await.expect("second migration run is a no-op");
    let (status, _, body) = get(&t, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok");
    t.finish().await;
});

on_both_backends!(health_reports_an_unavailable_database, |t| {
    t.db.pool.close().await;
    let (status, _, _) = get(&t, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    t.finish().await;
});

on_both_backends!(settings_page_renders_on_the_server, |t| {
    let (status, location, _) = get(&t, "/").await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some("/app/settings/superuser"));

    // The settings page itself needs a superuser (tests/auth.rs renders it signed in).
    let (status, location, _) = get(&t, "/app/settings/superuser/optimization").await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some("/login?next=/app/settings/superuser/optimization"));

    let (status, _, html) = get(&t, "/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("/pkg/runtime-policy.js"), "hydration script missing");

    let (status, _, _) = get(&t, "/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.finish().await;
});

/// The headers every answer carries, and the CSP it has.
async fn headers_of(app: axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app.oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name} on {status}");
    }
    let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

on_both_backends!(every_answer_carries_the_security_headers, |t| {
    let app = router(t.state().await);
    // A page: its CSP allows exactly the nonce its inline scripts carry.
    let (status, headers, html) = headers_of(app.clone(), Request::get("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap().to_string();
    let nonce = csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).expect("a nonce in the page's CSP");
    assert!(nonce.len() >= 16, "{csp}");
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the hydration script lacks the nonce");
    assert!(!headers.contains_key("strict-transport-security"), "no HSTS over plain HTTP");
    // A second page gets another nonce.
    let (_, again, _) = headers_of(app.clone(), Request::get("/login").body(Body::empty()).unwrap()).await;
    assert_ne!(again["content-security-policy"], headers["content-security-policy"]);

    // A server function's answer and an API answer.
    let (status, _, _) = headers_of(app.clone(), Request::post("/api/current_user").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, _) = headers_of(app.clone(), Request::get("/api/v1/runs/1/policy").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");

    // Served over TLS (the cookie is Secure), every answer asks for HTTPS from now on.
    let secure = router(t.state_with(true).await);
    let (_, headers, _) = headers_of(secure, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert!(headers["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    t.finish().await;
});
