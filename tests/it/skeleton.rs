//! The walking skeleton: database, migrations, health and the server-rendered page.

use crate::helpers::TestDb;
use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use runtime_policy::web::router;
use tower::ServiceExt;

async fn get(db: &TestDb, path: &str) -> (StatusCode, Option<String>, String) {
    let app = router(db.state().await);
    let res = app.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
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

/// GET `path` on an app over `state`: status and body.
async fn get_on(state: &runtime_policy::state::AppState, path: &str) -> (StatusCode, String) {
    let res = router(state.clone()).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    (status, String::from_utf8_lossy(&to_bytes(res.into_body(), 1 << 20).await.unwrap()).into_owned())
}

on_both_backends!(readiness_needs_the_database_every_migration_and_no_stop, |t| {
    let path = runtime_policy::paths::READYZ;
    let state = t.state().await;
    assert_eq!(get_on(&state, path).await, (StatusCode::OK, "ready".to_string()));
    // Asked to stop: not ready, while liveness still answers.
    state.stopping.set();
    let not_ready =
        |reason: &str| (StatusCode::SERVICE_UNAVAILABLE, format!("{{\"error\":\"{reason}\",\"status\":503}}"));
    assert_eq!(get_on(&state, path).await, not_ready("stopping"));
    assert_eq!(get_on(&state, "/healthz").await.0, StatusCode::OK);
    // A migration this build carries is missing.
    let state = t.state().await;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
        .execute(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(get_on(&state, path).await, not_ready("migrations not applied"));
    // The database is gone.
    t.db.pool.close().await;
    assert_eq!(get_on(&state, path).await, not_ready("database unavailable"));
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
    assert!(html.contains("runtime-policy.js"), "hydration script missing");
    assert!(html.contains("runtime-policy.css\""), "stylesheet missing");

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
    let (status, headers, _) =
        headers_of(app.clone(), Request::get("/api/v1/runs/1/policy").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");

    // Served over TLS (the cookie is Secure), every answer asks for HTTPS from now on.
    let secure = router(t.state_with(true).await);
    let (_, headers, _) = headers_of(secure, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert!(headers["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    t.finish().await;
});

/// Reads from `stream` until the server closes it or `within` passes; true when it closed.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn healthz_over_tcp(base: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_and_health_still_answers() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let t = TestDb::new(runtime_policy::config::Backend::Sqlite).await;
    let limits = runtime_policy::web::serve::ServeLimits {
        header_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(30),
        max_connections: 8,
        shutdown_grace: Duration::from_secs(1),
    };
    let base = crate::helpers::spawn_app_with(&t, limits).await;
    let addr = base.trim_start_matches("http://").to_string();
    // Eight connections fill the cap: half send part of a request head, half say nothing.
    let mut held = Vec::new();
    for i in 0..8 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
        }
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One more than the cap is closed at once.
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_millis(800)).await, "a connection over the cap stayed open");
    // The held ones are closed once the head deadline passes.
    for (i, s) in held.iter_mut().enumerate() {
        assert!(closed_within(s, Duration::from_secs(3)).await, "connection {i} was never closed");
    }
    assert!(healthz_over_tcp(&base).await.starts_with("HTTP/1.1 200"), "healthz after the idle connections went");
    t.finish().await;
}

#[tokio::test]
async fn a_request_over_its_time_limit_answers_503() {
    use std::time::Duration;
    let slow = axum::Router::new()
        .route("/slow", axum::routing::get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
        .route(
            runtime_policy::paths::AUDIT_EXPORT_CSV,
            axum::routing::get(|| async { tokio::time::sleep(Duration::from_millis(300)).await }),
        )
        .layer(axum::middleware::from_fn(|req, next| {
            runtime_policy::web::serve::time_limit(Duration::from_millis(100), req, next)
        }));
    let res = slow.clone().oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = serde_json::from_slice(&to_bytes(res.into_body(), 4096).await.unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("took longer than"), "{body}");
    // The audit downloads may take longer.
    let res = slow
        .clone()
        .oneshot(Request::get(runtime_policy::paths::AUDIT_EXPORT_CSV).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A request with a body gets the time to send it at the slowest rate accepted: 64 KiB/s
    // here buys a second more, enough for the 300 ms handler; with no body it is cut off.
    let upload = |length: u64| {
        Request::post("/upload").header("content-length", length).body(Body::from(vec![b'a'; length as usize])).unwrap()
    };
    let slow = axum::Router::new()
        .route("/upload", axum::routing::post(|| async { tokio::time::sleep(Duration::from_millis(300)).await }))
        .layer(axum::middleware::from_fn(|req, next| {
            runtime_policy::web::serve::time_limit(Duration::from_millis(100), req, next)
        }));
    let per_sec = runtime_policy::web::serve::MIN_UPLOAD_BYTES_PER_SEC;
    assert_eq!(slow.clone().oneshot(upload(per_sec)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(slow.oneshot(upload(0)).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
}

on_both_backends!(bundle_files_come_compressed_and_hashed_before_any_session_work, |t| {
    // A site folder of its own, laid out as scripts/build.sh leaves it.
    let site = tempfile::tempdir().unwrap();
    let bundle = site.path().join("pkg/0123abcd4567ef89");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(site.path().join("pkg/current"), "0123abcd4567ef89\n").unwrap();
    std::fs::write(bundle.join("runtime-policy.js"), "x".repeat(4000)).unwrap();
    std::fs::write(bundle.join("runtime-policy.js.br"), "brotli bytes").unwrap();
    std::fs::write(bundle.join("runtime-policy.js.gz"), "gzip bytes").unwrap();
    std::fs::write(site.path().join("favicon.svg"), "<svg/>").unwrap();
    let pkg_dir = runtime_policy::config::bundle_dir(site.path());
    assert_eq!(pkg_dir, "pkg/0123abcd4567ef89");
    let mut state = t.state().await;
    state.leptos_options = leptos::config::LeptosOptions::builder()
        .output_name("runtime-policy")
        .site_root(site.path().to_string_lossy().to_string())
        .site_pkg_dir(pkg_dir)
        .build();
    let app = router(state);
    let get = |path: &str, encoding: &str| {
        Request::get(path)
            .header("accept-encoding", encoding)
            .header("cookie", "rp_session=AAAAAAAAAAAAAAAAAAAAAA")
            .body(Body::empty())
            .unwrap()
    };
    let js = "/pkg/0123abcd4567ef89/runtime-policy.js";
    let res = app.clone().oneshot(get(js, "br, gzip")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-encoding"], "br");
    assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(res.headers()["vary"], "accept-encoding");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(to_bytes(res.into_body(), 1 << 20).await.unwrap(), "brotli bytes");
    let res = app.clone().oneshot(get(js, "gzip")).await.unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let res = app.clone().oneshot(get(js, "identity")).await.unwrap();
    assert_eq!(to_bytes(res.into_body(), 1 << 20).await.unwrap().len(), 4000);
    // Another bundle's file is not there, and its 404 is not kept.
    let res = app.clone().oneshot(get("/pkg/ffffffffffffffff/runtime-policy.js", "br")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["cache-control"], "no-store");
    // The icon's name has no hash: browsers revalidate it.
    let res = app.clone().oneshot(get("/favicon.svg", "")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    // Pages are compressed on the fly, never cached, and name the bundle by its hash.
    let res = app.clone().oneshot(get("/login", "identity")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = String::from_utf8(to_bytes(res.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(html.contains("/pkg/0123abcd4567ef89/runtime-policy.js"), "{html}");
    assert!(html.contains("/pkg/0123abcd4567ef89/runtime-policy.css"), "{html}");
    let res = app.clone().oneshot(get("/login", "gzip")).await.unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    // Without pkg/current (or with anything but a hash in it) the bundle is pkg/ itself.
    std::fs::write(site.path().join("pkg/current"), "../../etc\n").unwrap();
    assert_eq!(runtime_policy::config::bundle_dir(site.path()), "pkg");
    std::fs::remove_file(site.path().join("pkg/current")).unwrap();
    assert_eq!(runtime_policy::config::bundle_dir(site.path()), "pkg");
    t.finish().await;
});

/// Log lines written by the app while a test runs on one thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_request_has_an_id_and_one_log_line_without_secrets() {
    let t = TestDb::new(runtime_policy::config::Backend::Sqlite).await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = router(t.state().await);
    let send = |id: Option<&str>, path: &str| {
        let mut req = Request::get(path).header("cookie", "rp_session=secret-cookie-value");
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };

    // A well-formed id is kept; a missing or malformed one is replaced by a new one.
    let res = send(Some("trace-me-1"), "/setup?token=secret-token-value").await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-1");
    let fresh = send(None, "/healthz").await.unwrap().headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(fresh.len(), 16, "{fresh}");
    let replaced = send(Some("has spaces/and a slash"), "/healthz").await.unwrap().headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(replaced.len(), 16, "{replaced}");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"target\":\"http\"")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    let setup = lines.iter().find(|l| l.contains("trace-me-1")).expect("the id is in the line");
    // The refused setup address is a security event too, with the same id.
    assert!(
        text.lines().any(|l| l.contains("\"target\":\"security\"")
            && l.contains("permission refused")
            && l.contains("trace-me-1")),
        "{text}"
    );
    assert!(
        setup.contains("\"method\":\"GET\"")
            && setup.contains("\"route\":\"/setup\"")
            && setup.contains("\"status\":403"),
        "{setup}"
    );
    assert!(lines.iter().any(|l| l.contains(&fresh)), "{text}");
    // Never the query, a cookie or a token.
    for secret in ["secret-token-value", "secret-cookie-value", "rp_session"] {
        assert!(!text.contains(secret), "{secret} in the log: {text}");
    }
    t.finish().await;
}
