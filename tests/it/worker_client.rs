//! The reference worker's HTTP client against real servers on 127.0.0.1: it sends a request
//! again after a connection error or a 502/503/504, never after a 4xx; a read that times out is
//! sent again only for a GET; it waits for a server that is not up yet; and a worker finishes a
//! run through a gateway that refuses every third request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use runtime_policy::auth::token::{create_token, Grant, TokenName};
use runtime_policy::error::AppError;
use runtime_policy::policy::store::PolicyStore;
use runtime_policy::runs::input::NewBlocks;
use runtime_policy::runs::server::{create_run, Creator};
use runtime_policy::runs::worker::{self, ApiClient, ClientOptions, WorkerConfig};
use serde_json::json;

use crate::helpers::{self, spawn_app};

/// Quick retries, so the tests wait milliseconds.
fn quick(retries: u32) -> ClientOptions {
    ClientOptions {
        retries,
        backoff: Duration::from_millis(5),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(400),
        ca_cert: None,
    }
}

/// How many requests each path received.
#[derive(Clone, Default)]
struct Hits(Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>);

impl Hits {
    fn count(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// `/flaky`: 503 twice, then 200. `/gateway`: 502 then 504 then 200. `/denied`: 401.
/// `/busy`: always 503. `/slow`: answers after 3 s. `/missing`: 404.
async fn scripted(State(hits): State<Hits>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let n = {
        let mut map = hits.0.lock().unwrap();
        let n = map.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let err = |status: StatusCode, text: &str| {
        (
            status,
            [("content-type", "application/json")],
            json!({ "error": text, "status": status.as_u16() }).to_string(),
        )
            .into_response()
    };
    let ok = || (StatusCode::OK, [("etag", "\"e1\"")], json!({ "ok": true, "hit": n }).to_string()).into_response();
    match (path.as_str(), n) {
        ("/flaky", 1 | 2) => err(StatusCode::SERVICE_UNAVAILABLE, "warming up"),
        ("/gateway", 1) => err(StatusCode::BAD_GATEWAY, "bad gateway"),
        ("/gateway", 2) => err(StatusCode::GATEWAY_TIMEOUT, "gateway timeout"),
        (p, _) if p.starts_with("/denied") => err(StatusCode::UNAUTHORIZED, "a valid worker token is required"),
        ("/busy", _) => err(StatusCode::SERVICE_UNAVAILABLE, "busy"),
        ("/error", _) => err(StatusCode::INTERNAL_SERVER_ERROR, "broken"),
        ("/missing", _) => err(StatusCode::NOT_FOUND, "no such thing"),
        ("/slow", _) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok()
        }
        _ => ok(),
    }
}

async fn serve(listener: tokio::net::TcpListener, router: Router) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
}

async fn scripted_server() -> (String, Hits) {
    let hits = Hits::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    serve(listener, Router::new().fallback(any(scripted)).with_state(hits.clone())).await;
    (base, hits)
}

#[tokio::test]
async fn gateway_answers_are_retried_and_every_other_answer_is_final() {
    let (base, hits) = scripted_server().await;
    let client = ApiClient::with_options(&base, "rpw_test", quick(3)).unwrap();

    // 503, 503, then 200: three requests, one answer.
    let res = client.send(Method::GET, "/flaky", None).await.unwrap();
    assert_eq!((res.status, hits.count("/flaky")), (StatusCode::OK, 3));
    assert_eq!(res.etag.as_deref(), Some("\"e1\""));
    // 502 and 504 likewise, and for a POST too (the gateway never passed it on).
    let res = client.send(Method::POST, "/gateway", Some(&json!({ "a": 1 }))).await.unwrap();
    assert_eq!((res.status, hits.count("/gateway")), (StatusCode::OK, 3));

    // A 4xx or a 500 is the answer: sent once.
    for (path, status) in [
        ("/denied", StatusCode::UNAUTHORIZED),
        ("/missing", StatusCode::NOT_FOUND),
        ("/error", StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let res = client.send(Method::POST, path, Some(&json!({}))).await.unwrap();
        assert_eq!((res.status, hits.count(path)), (status, 1), "{path}");
    }

    // Retries run out: the last answer comes back after 1 + 3 requests.
    let res = client.send(Method::GET, "/busy", None).await.unwrap();
    assert_eq!((res.status, hits.count("/busy")), (StatusCode::SERVICE_UNAVAILABLE, 4));

    // The worker's own calls turn a 401 into an error after one request.
    let claims = runtime_policy::paths::api_run_claims(7);
    let denied = ApiClient::with_options(&format!("{base}/denied-prefix"), "rpw_test", quick(3)).unwrap();
    let e = denied.claim(7, "w", None).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    assert_eq!(hits.count(&format!("/denied-prefix{claims}")), 1);
}

#[tokio::test]
async fn a_read_that_times_out_is_sent_again_only_for_a_get() {
    let (base, hits) = scripted_server().await;
    let client = ApiClient::with_options(&base, "rpw_test", quick(1)).unwrap();
    let e = client.send(Method::GET, "/slow", None).await.unwrap_err();
    assert!(matches!(e, AppError::Unavailable(_)), "{e:?}");
    assert!(e.to_string().contains("timed out") && e.to_string().contains("tried 2 times"), "{e}");
    assert_eq!(hits.count("/slow"), 2);

    // A POST may have been acted on: not sent again.
    let (base, hits) = scripted_server().await;
    let client = ApiClient::with_options(&base, "rpw_test", quick(1)).unwrap();
    let e = client.send(Method::POST, "/slow", Some(&json!({}))).await.unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert_eq!(hits.count("/slow"), 1);
}

#[tokio::test]
async fn a_server_that_is_not_up_yet_is_waited_for_within_the_retries() {
    // A port with nothing behind it: refused at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}");
    let e = ApiClient::with_options(&base, "rpw_test", quick(0)).unwrap().send(Method::GET, "/x", None).await;
    let e = e.unwrap_err();
    assert!(matches!(e, AppError::Unavailable(_)), "{e:?}");
    assert!(e.to_string().contains(&addr.to_string()) && !e.to_string().contains("tried"), "{e}");

    // The server comes up 300 ms later; a client with retries to spare gets its answer.
    let hits = Hits::default();
    let later = hits.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        serve(listener, Router::new().fallback(any(scripted)).with_state(later)).await;
    });
    let options = ClientOptions { backoff: Duration::from_millis(100), ..quick(8) };
    let res = ApiClient::with_options(&base, "rpw_test", options).unwrap().send(Method::GET, "/x", None).await;
    assert_eq!(res.unwrap().status, StatusCode::OK);
    assert_eq!(hits.count("/x"), 1);
}

/// A gateway in front of the real server that answers 503 to every third request without
/// passing it on.
async fn refusing_gateway(upstream: String) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (seen2, refused2) = (seen.clone(), refused.clone());
    let http = reqwest::Client::new();
    let forward = move |method: Method, headers: HeaderMap, uri: axum::http::Uri, body: Bytes| {
        let (http, upstream, seen, refused) = (http.clone(), upstream.clone(), seen2.clone(), refused2.clone());
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                refused.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::SERVICE_UNAVAILABLE, "upstream busy").into_response();
            }
            let res =
                http.request(method, format!("{upstream}{uri}")).headers(headers).body(body).send().await.unwrap();
            let status = res.status();
            let headers = res.headers().clone();
            let body = res.bytes().await.unwrap();
            let mut out = (status, body).into_response();
            for name in ["etag", "content-type"] {
                if let Some(v) = headers.get(name) {
                    out.headers_mut().insert(name, v.clone());
                }
            }
            out
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    serve(listener, Router::new().fallback(any(forward))).await;
    (base, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_finishes_a_run_through_a_gateway_that_refuses_every_third_request() {
    let t = helpers::TestDb::new(runtime_policy::config::Backend::Sqlite).await;
    let app = spawn_app(&t).await;
    let (gateway, refused) = refusing_gateway(app).await;
    let token = create_token(&t.db, &TokenName::parse("through-gateway").unwrap(), &Grant::all()).await.unwrap();
    let store = PolicyStore::new(t.db.clone(), Default::default());
    let texts: Vec<String> = (0..12).map(|i| format!("gateway block {i}")).collect();
    let run = create_run(&store, &Creator::cli(), &NewBlocks::parse("blocks", texts).unwrap()).await.unwrap();
    let config = WorkerConfig {
        server: gateway,
        token,
        run_id: run.id,
        name: "gw".into(),
        lease_seconds: Some(60),
        idle_wait: Duration::from_millis(20),
        client: ClientOptions { read_timeout: Duration::from_secs(10), ..quick(3) },
        provider_ignores_caching: false,
    };
    let report = tokio::time::timeout(Duration::from_secs(60), worker::run(&config)).await.unwrap().unwrap();
    let mut indexes: Vec<i64> = report.completed.iter().map(|(_, i)| *i).collect();
    indexes.sort();
    assert_eq!(indexes, (0..12).collect::<Vec<_>>());
    assert!(refused.load(Ordering::SeqCst) >= 4, "the gateway refused {} requests", refused.load(Ordering::SeqCst));
    let done: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM blocks WHERE run_id = $1 AND state = 'done' AND attempts = 1")
            .bind(run.id)
            .fetch_one(&t.db.pool)
            .await
            .unwrap();
    assert_eq!(done, 12, "every block done once, at its first attempt");
    t.finish().await;
}

/// The real app behind TLS on 127.0.0.1, with a certificate for `localhost` from a CA of the
/// test's own; returns the base address and the CA's PEM file.
async fn spawn_tls_app(t: &helpers::TestDb, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use tokio_rustls::rustls;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Runtime Policy test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let leaf = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = runtime_policy::web::router(t.state().await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://localhost:{port}"), ca_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_command_speaks_https_and_trusts_only_what_it_is_told_to() {
    let t = helpers::TestDb::new(runtime_policy::config::Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let (base, ca_file) = spawn_tls_app(&t, dir.path()).await;
    let token = create_token(&t.db, &TokenName::parse("tls").unwrap(), &Grant::all()).await.unwrap();
    let store = PolicyStore::new(t.db.clone(), Default::default());
    let texts: Vec<String> = (0..4).map(|i| format!("tls block {i}")).collect();
    let run = create_run(&store, &Creator::cli(), &NewBlocks::parse("blocks", texts).unwrap()).await.unwrap();
    let worker = |extra: Vec<String>| {
        let (base, token, run) = (base.clone(), token.clone(), run.id.to_string());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_runtime-policy"))
                .args(["worker", "--run", &run, "--server", &base, "--name", "tls-1"])
                .args(extra)
                .env("RUNTIME_POLICY_TOKEN", token)
                .output()
                .unwrap()
        })
    };

    // The test CA is not among the system's: refused, at once (a certificate is not retried).
    let started = std::time::Instant::now();
    let out = worker(vec![]).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains("sending again") && !err.contains("tried"), "a TLS refusal was retried: {err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blocks WHERE run_id = $1 AND state = 'pending'")
        .bind(run.id)
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(pending, 4);

    // With the CA named, the run is done over HTTPS.
    let out = worker(vec!["--ca-cert".into(), ca_file.to_str().unwrap().into()]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("run {}: 4 blocks", run.id)));

    // A file that is not a certificate is named.
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let out = worker(vec!["--ca-cert".into(), dir.path().join("junk.pem").to_str().unwrap().into()]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-cert"));
    t.finish().await;
}
