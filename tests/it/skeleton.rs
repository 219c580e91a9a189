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
