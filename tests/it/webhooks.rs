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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
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
