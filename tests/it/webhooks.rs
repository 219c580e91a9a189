//! Webhooks on both backends, against a real receiver on 127.0.0.1: deliveries are queued in
//! the change's own transaction (none for a change that failed), signed with HMAC-SHA256 over
//! the timestamp and the body, retried after a 500 and recorded, filtered by event, and still
//! sent after the process that made the change is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use runtime_policy::policy::store::{Actor, PolicyStore};
use runtime_policy::policy::webhooks::{add_webhook, deliver_due, deliveries, redeliver, signature};
use serde_json::{json, Value};

use crate::helpers;

/// Requests the receiver got: headers and body. It answers 500 to the first `fail_first`.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, String)>>>);

async fn receiver(fail_first: usize) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    (url, receiver_on(listener, fail_first))
}

/// A receiver on `listener`, at `/hook`.
fn receiver_on(listener: tokio::net::TcpListener, fail_first: usize) -> Received {
    let got = Received::default();
    let seen = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let mut list = seen.0.lock().unwrap();
                list.push((headers, body));
                if list.len() <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    got
}

const SECRET: &str = "a-shared-secret-of-enough-length";

on_both_backends!(deliveries_are_signed_retried_recorded_and_filtered, |t| {
    let store = PolicyStore::new(t.db.clone(), HashMap::new());
    let http = reqwest::Client::new();
    let (url, got) = receiver(1).await;
    add_webhook(&t.db, &url, SECRET, &[], "root@example.com").await.unwrap();
    let (runs_url, runs_got) = receiver(0).await;
    add_webhook(&t.db, &runs_url, SECRET, &["run.created".into()], "root@example.com").await.unwrap();

    // A change that fails writes no delivery; one that commits writes one per subscriber.
    let alice = Actor::user(1, "alice@example.com");
    assert!(store.update(&alice, "worker.claim_batch_size", &json!(500), 0, None).await.is_err());
    assert!(deliveries(&t.db, 10).await.unwrap().is_empty());
    store.update(&alice, "worker.claim_batch_size", &json!(30), 0, Some("bigger")).await.unwrap();
    assert_eq!(deliveries(&t.db, 10).await.unwrap().len(), 1, "only the endpoint subscribed to everything");

    // First attempt: 500, recorded, retried later.
    let now = chrono::Utc::now();
    assert_eq!(deliver_due(&t.db, &http, now).await.unwrap(), 1);
    let d = &deliveries(&t.db, 10).await.unwrap()[0];
    assert_eq!((d.status.as_str(), d.attempts, d.last_status), ("pending", 1, Some(500)), "{d:?}");
    assert_eq!(deliver_due(&t.db, &http, now).await.unwrap(), 0, "not due yet");
    assert_eq!(deliver_due(&t.db, &http, now + chrono::Duration::minutes(5)).await.unwrap(), 1);
    let d = &deliveries(&t.db, 10).await.unwrap()[0];
    assert_eq!((d.status.as_str(), d.attempts, d.last_status), ("delivered", 2, Some(204)), "{d:?}");

    // Both attempts carry the same delivery id and a signature over the timestamp and body.
    let list = got.0.lock().unwrap().clone();
    assert_eq!(list.len(), 2);
    for (headers, body) in &list {
        let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(header("x-runtime-policy-event"), "policy.changed");
        assert_eq!(header("x-runtime-policy-delivery"), d.id.to_string());
        let sig = header("x-runtime-policy-signature");
        let t: i64 = sig.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
        assert_eq!(sig, signature(SECRET, t, body), "the receiver can check it");
        assert_ne!(sig, signature("another secret entirely", t, body));
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["event"], "policy.changed");
        assert_eq!(v["data"]["changes"][0]["key"], "worker.claim_batch_size");
        assert_eq!(v["data"]["reason"], "bigger");
    }
    // Redelivery sends it once more.
    redeliver(&t.db, d.id).await.unwrap();
    assert_eq!(deliver_due(&t.db, &http, chrono::Utc::now() + chrono::Duration::seconds(1)).await.unwrap(), 1);
    assert_eq!(got.0.lock().unwrap().len(), 3);

    // A run: both endpoints hear of it.
    let blocks = runtime_policy::runs::input::NewBlocks::parse("blocks", vec!["one".to_string()]).unwrap();
    runtime_policy::runs::server::create_run(&store, &runtime_policy::runs::server::Creator::cli(), &blocks)
        .await
        .unwrap();
    assert_eq!(deliver_due(&t.db, &http, chrono::Utc::now() + chrono::Duration::seconds(1)).await.unwrap(), 2);
    let runs = runs_got.0.lock().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(serde_json::from_str::<Value>(&runs[0].1).unwrap()["event"], "run.created");
    t.finish().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_by_a_process_that_is_gone_is_still_delivered() {
    let t = helpers::TestDb::new(runtime_policy::config::Backend::Sqlite).await;
    let (url, got) = receiver(0).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let db_url = t.url.as_str().to_string();
    let cli = move |args: Vec<String>| {
        let db_url = db_url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_runtime-policy"))
                .env("DATABASE_URL", db_url)
                .args(args)
                .output()
                .unwrap()
        })
    };
    let out = cli(vec!["webhook".into(), "add".into(), url, "--secret-file".into(), secret.display().to_string()])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The CLI commits the change and exits without sending anything: as a server killed
    // between the commit and the delivery would.
    let out = cli(vec!["policy".into(), "set".into(), "worker.claim_ordering".into(), "block_index_desc".into()])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(got.0.lock().unwrap().is_empty());
    // The next dispatcher, in another process's place, sends it.
    let http = reqwest::Client::new();
    assert_eq!(deliver_due(&t.db, &http, chrono::Utc::now() + chrono::Duration::seconds(1)).await.unwrap(), 1);
    let list = got.0.lock().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert!(list[0].1.contains("worker.claim_ordering"));
    let out = cli(vec!["webhook".into(), "deliveries".into()]).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("delivered"), "{}", String::from_utf8_lossy(&out.stdout));
    t.finish().await;
}

/// The README's walk-through against the real binary: a token from the CLI, a key changed with
/// `If-Match`, the policy exported, and a signed webhook arriving from the server's own sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_flow_token_if_match_export_and_a_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/flow.db", dir.path().display());
    let bin = env!("CARGO_BIN_EXE_runtime-policy");
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(bin)
            .env("DATABASE_URL", &db)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["user", "create", "root@example.com", "--role", "superuser"], "a long enough password\n");
    let token = run(&["api-token", "create", "ci", "--user", "root@example.com", "--scope", "policy:write"], "");
    let token = token.trim().to_string();
    let (url, got) = receiver(0).await;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    run(&["webhook", "add", &url, "--secret-file", secret.to_str().unwrap(), "--event", "policy.changed"], "");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = std::process::Command::new(bin)
        .env("DATABASE_URL", &db)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Stopped however the test ends.
    let server = Stop(server);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not come up");
    let key = format!("{base}/api/v1/policy/worker.claim_batch_size");
    let res = http.get(&key).bearer_auth(&token).send().await.unwrap();
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let res = http
        .put(&key)
        .bearer_auth(&token)
        .header("if-match", &etag)
        .header("content-type", "application/json")
        .body(r#"{"value": 25, "reason": "bigger batches"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let export: Value =
        http.get(format!("{base}/api/v1/policy/export")).bearer_auth(&token).send().await.unwrap().json_value().await;
    assert_eq!(export["keys"]["worker.claim_batch_size"], 25);
    // The server's sender delivers within a few seconds, signed.
    let mut delivered = None;
    for _ in 0..100 {
        if let Some(first) = got.0.lock().unwrap().first().cloned() {
            delivered = Some(first);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(server);
    let (headers, body) = delivered.expect("no webhook arrived");
    let sig = headers["x-runtime-policy-signature"].to_str().unwrap().to_string();
    let t: i64 = sig.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
    assert_eq!(sig, signature(SECRET, t, &body));
    assert!(body.contains("bigger batches"), "{body}");
}

struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}

/// A server killed with SIGKILL while a delivery is still owed (its endpoint was down) loses
/// nothing: the next server sends it once the endpoint is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_owed_when_the_server_is_killed_is_sent_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/kill.db", dir.path().display());
    let bin = env!("CARGO_BIN_EXE_runtime-policy");
    // The receiver's port, closed for now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin).env("DATABASE_URL", &db).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cli(&["webhook", "add", &url, "--secret-file", secret.to_str().unwrap()]);
    let serve = || {
        let site = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Stop(
            std::process::Command::new(bin)
                .env("DATABASE_URL", &db)
                .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{site}"))
                .env("RUST_LOG", "warn")
                .arg("serve")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let first = serve();
    cli(&["policy", "set", "worker.claim_ordering", "block_index_desc", "--reason", "before the crash"]);
    // Wait until the first server has tried (and failed) at least once.
    let store = PolicyStore::new(
        runtime_policy::db::Db::open(&runtime_policy::config::DatabaseUrl::parse(&db).unwrap()).await.unwrap(),
        HashMap::new(),
    );
    let mut tried = false;
    for _ in 0..100 {
        if deliveries(&store.db, 5).await.unwrap().iter().any(|d| d.attempts > 0 && d.status == "pending") {
            tried = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(tried, "the first server never tried: {:?}", deliveries(&store.db, 5).await.unwrap());
    // SIGKILL: no shutdown of any kind.
    drop(first);
    // The endpoint comes up; a new server sends what is owed.
    let got = receiver_on(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap(), 0);
    let _second = serve();
    let mut arrived = None;
    for _ in 0..200 {
        if let Some(first) = got.0.lock().unwrap().first().cloned() {
            arrived = Some(first);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (headers, body) = arrived.expect("the owed delivery never arrived");
    assert!(body.contains("before the crash"), "{body}");
    let sig = headers["x-runtime-policy-signature"].to_str().unwrap().to_string();
    let t: i64 = sig.strip_prefix("t=").unwrap().split(',').next().unwrap().parse().unwrap();
    assert_eq!(sig, signature(SECRET, t, &body));
}
