//! Runs on both backends: the snapshot taken at creation, the worker API and the reference
//! worker against a real server on 127.0.0.1, claims in integer block_index order, leases,
//! retries, the database refusing snapshot updates, API statuses, and who sees which run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use runtime_policy::auth::token::{create_token, revoke_token, Grant, TokenName};
use runtime_policy::auth::types::{AuthUser, Role};
use runtime_policy::error::AppError;
use runtime_policy::paths;
use runtime_policy::policy::registry::Layer;
use runtime_policy::policy::store::{Actor, PolicyStore};
use runtime_policy::runs::claims::Holder;
use runtime_policy::runs::input::{NewBlocks, WorkerName};
use runtime_policy::runs::server::Creator;
use runtime_policy::runs::snapshot::render_block_prompt;
use runtime_policy::runs::worker::{self, ApiClient, ClientOptions, WorkerConfig};
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{self, spawn_app};

/// The run functions the tests call, from the files that hold them.
mod run_store {
    pub use runtime_policy::db::sha256_hex;
    pub use runtime_policy::runs::claims::{claim, complete, fail};
    pub use runtime_policy::runs::server::{create_run, list_runs, run_detail, snapshot};
}

/// The holder of direct claims in these tests: a token id of its own, and the worker name.
fn holder(w: &WorkerName) -> Holder<'_> {
    Holder { token: 1, worker: w }
}

const NEW_PROMPT: &str = "NEW PROMPT for {{block_text}}";

fn store(t: &helpers::TestDb) -> PolicyStore {
    PolicyStore::new(t.db.clone(), HashMap::new())
}

fn admin() -> Actor {
    Actor::user(1, "root@example.com")
}

async fn token(t: &helpers::TestDb, name: &str) -> String {
    create_token(&t.db, &TokenName::parse(name).unwrap(), &Grant::all()).await.unwrap()
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("block text number {i}")).collect()
}

fn worker_config(base: &str, token: &str, run_id: i64, name: &str) -> WorkerConfig {
    WorkerConfig {
        server: base.to_string(),
        token: token.to_string(),
        run_id,
        name: name.to_string(),
        lease_seconds: Some(60),
        idle_wait: Duration::from_millis(50),
        client: ClientOptions::default(),
        provider_ignores_caching: false,
    }
}

/// Every block of a run: uid, index, state, attempts, claimed_by, text, result.
async fn blocks(
    t: &helpers::TestDb,
    run_id: i64,
) -> Vec<(String, i64, String, i64, Option<String>, String, Option<String>)> {
    sqlx::query(
        "SELECT block_uid, block_index, state, attempts, claimed_by, text, result FROM blocks WHERE run_id = $1 ORDER BY block_index",
    )
    .bind(run_id)
    .fetch_all(&t.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get("block_uid"),
            r.get("block_index"),
            r.get("state"),
            r.get("attempts"),
            r.get("claimed_by"),
            r.get("text"),
            r.get("result"),
        )
    })
    .collect()
}

async fn run_status(t: &helpers::TestDb, run_id: i64) -> (String, i64, i64) {
    let r = sqlx::query("SELECT status, blocks_done, blocks_failed FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    (r.get("status"), r.get("blocks_done"), r.get("blocks_failed"))
}

on_both_backends!(two_workers_finish_a_run_under_its_snapshot_while_the_baseline_changes, |t| {
    let s = store(&t);
    // A value a superuser set before the run: the snapshot records its layer and version.
    s.update(&admin(), "worker.max_retries", &json!(5), 0, None).await.unwrap();
    let base = spawn_app(&t).await;
    let tok = token(&t, "fleet").await;
    let client = ApiClient::new(&base, &tok).unwrap();

    // 1. Create a run with 50 blocks through the API.
    let res = client.send(Method::POST, paths::API_RUNS, Some(&json!({ "blocks": texts(50) }))).await.unwrap();
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let created: Value = res.json().unwrap();
    let run_id = created["id"].as_i64().unwrap();
    assert_eq!(created["block_count"], json!(50));
    assert_eq!(created["policy_revision"], json!(1));

    let (snapshot, etag) = client.snapshot(run_id).await.unwrap();
    assert_eq!(etag, created["snapshot_sha256"].as_str().unwrap());
    assert_eq!(snapshot.claim_batch_size(), 10);
    assert_eq!(snapshot.keys.len(), runtime_policy::policy::REGISTRY.len());
    let retries = snapshot.get("worker.max_retries").unwrap();
    assert_eq!((retries.value.clone(), retries.captured_from, retries.admin_version), (json!(5), Layer::Admin, 1));
    let size = snapshot.get("worker.claim_batch_size").unwrap();
    assert_eq!((size.captured_from, size.admin_version), (Layer::Default, 0));
    let old_prompt = snapshot.block_prompt();

    // 2. Claim one batch and finish it.
    let first = client.claim(run_id, "first", Some(60)).await.unwrap();
    assert_eq!(first.batch_size, 10);
    assert_eq!(first.blocks.iter().map(|b| b.block_index).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    for b in &first.blocks {
        client
            .complete(run_id, &b.block_uid, "first", b.attempt, &worker::process_block(&snapshot, &b.text))
            .await
            .unwrap();
    }

    // 3. A superuser changes the batch size and the block prompt.
    s.update(&admin(), "worker.claim_batch_size", &json!(7), 0, None).await.unwrap();
    s.update(&admin(), "worker.default_block_prompt", &json!(NEW_PROMPT), 0, None).await.unwrap();
    let (again, etag_again) = client.snapshot(run_id).await.unwrap();
    assert_eq!((again.clone(), etag_again), (snapshot.clone(), etag.clone()), "the run's snapshot must not move");

    // 4. Two reference workers finish the run at the same time.
    let (config_a, config_b) =
        (worker_config(&base, &tok, run_id, "worker-a"), worker_config(&base, &tok, run_id, "worker-b"));
    let (a, b) = tokio::join!(worker::run(&config_a), worker::run(&config_b));
    let (a, b) = (a.unwrap(), b.unwrap());
    for report in [&a, &b] {
        assert_eq!(report.snapshot_sha256, etag);
        assert!(report.batches.iter().all(|&n| n == 10), "every batch uses the snapshot's size: {:?}", report.batches);
    }
    assert_eq!(a.completed.len() + b.completed.len(), 40);
    let mut seen: HashSet<String> = first.blocks.iter().map(|b| b.block_uid.clone()).collect();
    for (uid, _) in a.completed.iter().chain(&b.completed) {
        assert!(seen.insert(uid.clone()), "block {uid} processed twice");
    }
    assert_eq!(seen.len(), 50, "a block was lost");

    let all = blocks(&t, run_id).await;
    assert_eq!(all.len(), 50);
    for (uid, index, state, attempts, _, text, result) in &all {
        assert_eq!((state.as_str(), *attempts), ("done", 1), "{uid}");
        assert_eq!(
            result.as_deref(),
            Some(render_block_prompt(&old_prompt, text).as_str()),
            "block {index} used another prompt"
        );
    }
    assert_eq!(run_status(&t, run_id).await, ("done".to_string(), 50, 0));

    // A run created after the change uses the new values.
    let later =
        run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(50)).unwrap()).await.unwrap();
    assert_eq!(later.policy_revision, 3);
    assert_ne!(later.snapshot_sha256, etag);
    let report = worker::run(&worker_config(&base, &tok, later.id, "worker-c")).await.unwrap();
    assert_eq!(report.batches, vec![7, 7, 7, 7, 7, 7, 7, 1]);
    for (_, _, state, _, by, text, result) in blocks(&t, later.id).await {
        assert_eq!((state.as_str(), by.as_deref()), ("done", Some("worker-c")));
        assert_eq!(result.unwrap(), render_block_prompt(NEW_PROMPT, &text));
    }
    // The first run's snapshot still says what it said.
    let stored = run_store::snapshot(&t.db, run_id).await.unwrap();
    assert_eq!(stored.sha256, etag);
    assert_eq!(stored.snapshot.claim_batch_size(), 10);
    t.finish().await;
});

/// Gives a run's three blocks the indexes 2, 10 and 100, stored out of order.
async fn spread_indexes(t: &helpers::TestDb, run_id: i64) {
    for (from, to) in [(2, 10), (1, 2), (0, 100)] {
        sqlx::query("UPDATE blocks SET block_index = $1 WHERE run_id = $2 AND block_index = $3")
            .bind(to)
            .bind(run_id)
            .bind(from)
            .execute(&t.db.pool)
            .await
            .unwrap();
    }
}

on_both_backends!(claims_order_by_the_integer_block_index_as_the_snapshot_says, |t| {
    let s = store(&t);
    s.update(&admin(), "worker.claim_batch_size", &json!(1), 0, None).await.unwrap();
    let three = NewBlocks::parse("blocks", vec!["a".into(), "b".into(), "c".into()]).unwrap();
    let asc = run_store::create_run(&s, &Creator::cli(), &three).await.unwrap();
    s.update(&admin(), "worker.claim_ordering", &json!("block_index_desc"), 0, None).await.unwrap();
    let desc = run_store::create_run(&s, &Creator::cli(), &three).await.unwrap();
    // Changing the baseline back changes neither run.
    s.update(&admin(), "worker.claim_ordering", &json!("block_index_asc"), 1, None).await.unwrap();
    s.update(&admin(), "worker.claim_batch_size", &json!(50), 1, None).await.unwrap();

    let w = WorkerName::parse("w").unwrap();
    for (run, expected) in [(asc.id, [2, 10, 100]), (desc.id, [100, 10, 2])] {
        spread_indexes(&t, run).await;
        let mut order = Vec::new();
        for _ in 0..3 {
            let c =
                run_store::claim(&t.db, run, holder(&w), Duration::from_secs(60), chrono::Utc::now()).await.unwrap();
            assert_eq!(c.blocks.len(), 1, "batch size 1 from the snapshot");
            order.push(c.blocks[0].block_index);
        }
        assert_eq!(order, expected, "run {run}");
        let c = run_store::claim(&t.db, run, holder(&w), Duration::from_secs(60), chrono::Utc::now()).await.unwrap();
        assert!(c.blocks.is_empty() && !c.finished);
    }

    // One claim of a bigger batch comes back in order too.
    s.update(&admin(), "worker.claim_batch_size", &json!(10), 2, None).await.unwrap();
    let run = run_store::create_run(&s, &Creator::cli(), &three).await.unwrap();
    spread_indexes(&t, run.id).await;
    let c = run_store::claim(&t.db, run.id, holder(&w), Duration::from_secs(60), chrono::Utc::now()).await.unwrap();
    assert_eq!(c.blocks.iter().map(|b| b.block_index).collect::<Vec<_>>(), vec![2, 10, 100]);
    t.finish().await;
});

on_both_backends!(an_expired_claim_is_picked_up_by_another_worker, |t| {
    let s = store(&t);
    let base = spawn_app(&t).await;
    let tok = token(&t, "fleet").await;
    let client = ApiClient::new(&base, &tok).unwrap();
    let run = run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(5)).unwrap()).await.unwrap();

    // A worker claims everything with a one-second lease, then dies.
    let dead = client.claim(run.id, "doomed", Some(1)).await.unwrap();
    assert_eq!(dead.blocks.len(), 5);
    let other = client.claim(run.id, "rescuer", Some(60)).await.unwrap();
    assert!(other.blocks.is_empty() && !other.finished, "nothing is claimable while the lease runs");

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let report = worker::run(&worker_config(&base, &tok, run.id, "rescuer")).await.unwrap();
    assert_eq!(report.completed.len(), 5);

    // The dead worker comes back: its claim is gone.
    let b = &dead.blocks[0];
    let res = client
        .send(
            Method::POST,
            &paths::api_block_complete(run.id, &b.block_uid),
            Some(&json!({ "worker": "doomed", "attempt": b.attempt, "result": "late" })),
        )
        .await
        .unwrap();
    assert_eq!(res.status, StatusCode::CONFLICT);
    for (_, _, state, attempts, by, _, result) in blocks(&t, run.id).await {
        assert_eq!((state.as_str(), attempts, by.as_deref()), ("done", 2, Some("rescuer")));
        assert_ne!(result.as_deref(), Some("late"));
    }
    assert_eq!(run_status(&t, run.id).await, ("done".to_string(), 5, 0));
    t.finish().await;
});

on_both_backends!(a_failed_block_is_retried_up_to_the_snapshot_max_retries, |t| {
    let s = store(&t);
    s.update(&admin(), "worker.max_retries", &json!(1), 0, None).await.unwrap();
    let run = run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(2)).unwrap()).await.unwrap();
    // Raising the baseline afterwards gives this run no extra attempt.
    s.update(&admin(), "worker.max_retries", &json!(10), 1, None).await.unwrap();
    let w = WorkerName::parse("w").unwrap();
    let now = chrono::Utc::now();

    let c = run_store::claim(&t.db, run.id, holder(&w), Duration::from_secs(60), now).await.unwrap();
    let (b0, b1) = (&c.blocks[0], &c.blocks[1]);
    let out = run_store::fail(&t.db, run.id, &b0.block_uid, holder(&w), 1, "model timed out").await.unwrap();
    assert_eq!((out.state.as_str(), out.attempts), ("pending", 1));
    // Failing twice with the same attempt is refused.
    assert!(matches!(
        run_store::fail(&t.db, run.id, &b0.block_uid, holder(&w), 1, "again").await,
        Err(AppError::Conflict(_))
    ));

    let c = run_store::claim(&t.db, run.id, holder(&w), Duration::from_secs(60), now).await.unwrap();
    assert_eq!(c.blocks.iter().map(|b| (b.block_index, b.attempt)).collect::<Vec<_>>(), vec![(0, 2)]);
    let out = run_store::fail(&t.db, run.id, &b0.block_uid, holder(&w), 2, "model timed out").await.unwrap();
    assert_eq!((out.state.as_str(), out.attempts), ("failed", 2));

    // The other block's holder dies twice; its last lease expiring fails it.
    let later = now + chrono::Duration::seconds(120);
    let c = run_store::claim(&t.db, run.id, holder(&w), Duration::from_secs(60), later).await.unwrap();
    assert_eq!(
        c.blocks.iter().map(|b| (b.block_uid.as_str(), b.attempt)).collect::<Vec<_>>(),
        vec![(b1.block_uid.as_str(), 2)]
    );
    let c =
        run_store::claim(&t.db, run.id, holder(&w), Duration::from_secs(60), later + chrono::Duration::seconds(120))
            .await
            .unwrap();
    assert!(c.blocks.is_empty());
    assert!(c.finished);
    let all = blocks(&t, run.id).await;
    assert_eq!(all.iter().map(|b| b.2.as_str()).collect::<Vec<_>>(), vec!["failed", "failed"]);
    assert_eq!(run_status(&t, run.id).await, ("failed".to_string(), 0, 2));
    t.finish().await;
});

on_both_backends!(the_database_refuses_to_change_a_snapshot, |t| {
    let s = store(&t);
    let run = run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(1)).unwrap()).await.unwrap();
    let before = run_store::snapshot(&t.db, run.id).await.unwrap();
    assert_eq!(before.sha256, run_store::sha256_hex(&before.text));
    for sql in [
        "UPDATE runs SET policy_snapshot = '{\"policy_revision\":0,\"keys\":[]}' WHERE id = $1",
        "UPDATE runs SET snapshot_sha256 = '0000000000000000000000000000000000000000000000000000000000000000' WHERE id = $1",
        "UPDATE runs SET policy_revision = policy_revision + 1 WHERE id = $1",
        "UPDATE runs SET policy_snapshot = policy_snapshot WHERE id = $1",
    ] {
        let e = sqlx::query(sql).bind(run.id).execute(&t.db.pool).await.unwrap_err();
        assert!(e.to_string().contains("the policy snapshot is immutable"), "{sql}: {e}");
    }
    if t.db.backend == runtime_policy::config::Backend::Sqlite {
        // Re-inserting the id with another snapshot (delete + insert) is refused too.
        let mut conn = t.db.pool.acquire().await.unwrap();
        sqlx::query("CREATE TEMP TABLE forged AS SELECT * FROM runs WHERE id = $1")
            .bind(run.id)
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("UPDATE forged SET policy_snapshot = '{}'").execute(&mut *conn).await.unwrap();
        let e = sqlx::query("INSERT OR REPLACE INTO runs SELECT * FROM forged").execute(&mut *conn).await.unwrap_err();
        assert!(e.to_string().contains("the policy snapshot is immutable"), "{e}");
    }
    // Progress columns stay writable.
    sqlx::query("UPDATE runs SET status = 'running' WHERE id = $1").bind(run.id).execute(&t.db.pool).await.unwrap();
    assert_eq!(run_store::snapshot(&t.db, run.id).await.unwrap(), before);
    t.finish().await;
});

on_both_backends!(the_worker_api_answers_bad_callers_and_bad_input_with_statuses, |t| {
    let s = store(&t);
    let base = spawn_app(&t).await;
    let tok = token(&t, "fleet").await;
    let good = ApiClient::new(&base, &tok).unwrap();
    let run = run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(2)).unwrap()).await.unwrap();
    let id = run.id;
    let policy = paths::api_run_policy(id);
    let claims = paths::api_run_claims(id);
    let complete = paths::api_block_complete(id, &format!("r{id}-b0"));
    let fail = paths::api_block_fail(id, &format!("r{id}-b0"));
    let worker_body = json!({ "worker": "w" });
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, paths::API_RUNS, Some(json!({ "blocks": ["x"] }))),
        (Method::GET, &policy, None),
        (Method::POST, &claims, Some(worker_body.clone())),
        (Method::POST, &complete, Some(json!({ "worker": "w", "attempt": 1, "result": "r" }))),
        (Method::POST, &fail, Some(json!({ "worker": "w", "attempt": 1, "error": "e" }))),
    ];
    let runs_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs").fetch_one(&t.db.pool).await.unwrap();

    // No token, an unknown token, a revoked token: 401 and nothing changes.
    let revoked = token(&t, "old").await;
    revoke_token(&t.db, &TokenName::parse("old").unwrap()).await.unwrap();
    for bad in ["rpw_unknown", revoked.as_str()] {
        let c = ApiClient::new(&base, bad).unwrap();
        for (m, p, body) in &routes {
            let r = c.send(m.clone(), p, body.as_ref()).await.unwrap();
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {p}");
            assert!(r.json::<Value>().unwrap()["error"].is_string());
        }
    }
    let runs_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs").fetch_one(&t.db.pool).await.unwrap();
    assert_eq!(runs_before, runs_after);
    assert!(blocks(&t, id).await.iter().all(|b| b.2 == "pending"));

    // The snapshot with its ETag; If-None-Match gets 304.
    let r = good.send(Method::GET, &policy, None).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.etag.as_deref(), Some(format!("\"{}\"", run.snapshot_sha256).as_str()));
    let body: Value = r.json().unwrap();
    assert_eq!(body["values"]["worker.claim_batch_size"], json!(10));
    let tag = format!("\"{}\"", run.snapshot_sha256);
    let r = good.send_with(Method::GET, &policy, None, &[("if-none-match", tag.as_str())]).await.unwrap();
    assert_eq!((r.status, r.etag.as_deref(), r.body.len()), (StatusCode::NOT_MODIFIED, Some(tag.as_str()), 0));
    let r = good.send_with(Method::GET, &policy, None, &[("if-none-match", "\"other\"")]).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(body["keys"][0]["captured_from"], json!("default"));

    // Unknown runs and blocks: 404.
    for (m, p, b) in [
        (Method::GET, paths::api_run_policy(999999), None),
        (Method::POST, paths::api_run_claims(999999), Some(worker_body.clone())),
        (
            Method::POST,
            paths::api_block_complete(id, "nope"),
            Some(json!({ "worker": "w", "attempt": 1, "result": "r" })),
        ),
    ] {
        let r = good.send(m.clone(), &p, b.as_ref()).await.unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}");
    }
    // A block not claimed by the caller: 409.
    let r =
        good.send(Method::POST, &complete, Some(&json!({ "worker": "w", "attempt": 1, "result": "r" }))).await.unwrap();
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Bad input: 400 (not JSON) or 422 naming the field.
    let cases: Vec<(Method, String, Option<Value>, StatusCode, &str)> = vec![
        (Method::GET, "/api/v1/runs/abc/policy".into(), None, StatusCode::UNPROCESSABLE_ENTITY, "id"),
        (Method::GET, "/api/v1/runs/-1/policy".into(), None, StatusCode::UNPROCESSABLE_ENTITY, "id"),
        (Method::POST, paths::API_RUNS.into(), Some(json!({})), StatusCode::UNPROCESSABLE_ENTITY, "blocks"),
        (
            Method::POST,
            paths::API_RUNS.into(),
            Some(json!({ "blocks": "x" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "blocks",
        ),
        (
            Method::POST,
            paths::API_RUNS.into(),
            Some(json!({ "blocks": [] })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "blocks",
        ),
        (
            Method::POST,
            paths::API_RUNS.into(),
            Some(json!({ "blocks": ["ok", 3] })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "blocks[1]",
        ),
        (
            Method::POST,
            paths::API_RUNS.into(),
            Some(json!({ "blocks": ["ok", "  "] })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "blocks[1]",
        ),
        (Method::POST, paths::API_RUNS.into(), Some(json!([1, 2])), StatusCode::BAD_REQUEST, "body"),
        (Method::POST, claims.clone(), Some(json!({})), StatusCode::UNPROCESSABLE_ENTITY, "worker"),
        (Method::POST, claims.clone(), Some(json!({ "worker": "a b" })), StatusCode::UNPROCESSABLE_ENTITY, "worker"),
        (Method::POST, claims.clone(), Some(json!({ "worker": 7 })), StatusCode::UNPROCESSABLE_ENTITY, "worker"),
        (
            Method::POST,
            claims.clone(),
            Some(json!({ "worker": "w", "lease_seconds": 0 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "lease_seconds",
        ),
        (
            Method::POST,
            claims.clone(),
            Some(json!({ "worker": "w", "lease_seconds": "soon" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "lease_seconds",
        ),
        (
            Method::POST,
            complete.clone(),
            Some(json!({ "worker": "w", "result": "r" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "attempt",
        ),
        (
            Method::POST,
            complete.clone(),
            Some(json!({ "worker": "w", "attempt": 1 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "result",
        ),
        (
            Method::POST,
            fail.clone(),
            Some(json!({ "worker": "w", "attempt": 1.5, "error": "e" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "attempt",
        ),
    ];
    for (m, p, b, status, field) in cases {
        let r = good.send(m.clone(), &p, b.as_ref()).await.unwrap();
        assert_eq!(r.status, status, "{m} {p} {b:?}");
        assert_eq!(r.json::<Value>().unwrap()["field"], json!(field), "{m} {p} {b:?}");
    }
    // A body that is not JSON at all.
    let c = ApiClient::new(&base, &tok).unwrap();
    let raw = c.send(Method::POST, &claims, Some(&json!("not an object"))).await.unwrap();
    assert_eq!(raw.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        runs_before,
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM runs").fetch_one(&t.db.pool).await.unwrap()
    );
    t.finish().await;
});

async fn user(t: &helpers::TestDb, email: &str, role: Role) -> AuthUser {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, role, disabled, created_at) VALUES ($1, '$argon2id$test', $2, 0, '2026-01-01T00:00:00.000000Z') RETURNING id",
    )
    .bind(email)
    .bind(role.as_str())
    .fetch_one(&t.db.pool)
    .await
    .unwrap();
    AuthUser { id, email: email.to_string(), role }
}

on_both_backends!(members_see_their_own_runs_and_the_page_shows_drift, |t| {
    let s = store(&t);
    let ann = user(&t, "ann@example.com", Role::Member).await;
    let bob = user(&t, "bob@example.com", Role::Member).await;
    let root = user(&t, "root@example.com", Role::Superuser).await;
    let blocks = NewBlocks::from_paragraphs("text", "first paragraph\n\nsecond\nparagraph\n\n\n").unwrap();
    assert_eq!(blocks.len(), 2);
    let a1 = run_store::create_run(&s, &Creator::user(&ann), &blocks).await.unwrap();
    let b1 = run_store::create_run(&s, &Creator::user(&bob), &blocks).await.unwrap();
    let a2 = run_store::create_run(&s, &Creator::user(&ann), &blocks).await.unwrap();

    let ids = |v: Vec<runtime_policy::runs::types::RunSummary>| v.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(run_store::list_runs(&t.db, &ann, 100).await.unwrap()),
        vec![a2.id, a1.id],
        "newest first, own only"
    );
    assert_eq!(ids(run_store::list_runs(&t.db, &bob, 100).await.unwrap()), vec![b1.id]);
    assert_eq!(ids(run_store::list_runs(&t.db, &root, 100).await.unwrap()), vec![a2.id, b1.id, a1.id]);
    let listed = run_store::list_runs(&t.db, &ann, 100).await.unwrap();
    assert_eq!(
        (listed[0].status.as_str(), listed[0].block_count, listed[0].created_by.as_str()),
        ("pending", 2, "ann@example.com")
    );

    assert!(matches!(run_store::run_detail(&s, &bob, a1.id).await, Err(AppError::NotFound(_))));
    assert!(run_store::run_detail(&s, &root, a1.id).await.is_ok());

    let detail = run_store::run_detail(&s, &ann, a1.id).await.unwrap();
    assert!(detail.keys.iter().all(|k| !k.drift));
    assert_eq!(detail.counts.pending, 2);
    s.update(&Actor::user(root.id, &root.email), "worker.claim_batch_size", &json!(25), 0, None).await.unwrap();
    let detail = run_store::run_detail(&s, &ann, a1.id).await.unwrap();
    let k = detail.keys.iter().find(|k| k.key == "worker.claim_batch_size").unwrap();
    assert_eq!(k.provenance, "effective=10 (source=run_snapshot)");
    assert_eq!(k.captured_from, Layer::Default);
    assert!(k.drift);
    assert_eq!(k.baseline.as_deref(), Some("effective=25 (source=admin)"));
    assert_eq!(detail.keys.iter().filter(|k| k.drift).count(), 1);
    let prompt = detail.keys.iter().find(|k| k.key == "worker.default_system_prompt").unwrap();
    assert!(prompt.provenance_short.ends_with("… (source=run_snapshot)"), "{}", prompt.provenance_short);
    t.finish().await;
});

#[test]
fn run_create_reads_the_blocks_file_and_bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/cli.db", dir.path().display());
    let file = dir.path().join("blocks.txt");
    std::fs::write(&file, "one\n\ntwo\nstill two\n\nthree\n").unwrap();
    let bin = env!("CARGO_BIN_EXE_runtime-policy");
    let out = std::process::Command::new(bin)
        .env("DATABASE_URL", &db)
        .args(["run", "create", "--blocks"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("created run 1 with 3 blocks at policy revision 0"), "{text}");

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "\n").unwrap();
    let token_file = token_file.to_str().unwrap();
    // (arguments, RUNTIME_POLICY_TOKEN, what the one line names)
    for (args, env_token, names) in [
        (vec!["run", "create", "--blocks", empty.to_str().unwrap()], None, "--blocks"),
        (vec!["run", "create", "--blocks", "/no/such/file"], None, "--blocks"),
        (vec!["worker", "--run", "1", "--server", "ftp://example.test"], Some("t"), "--server"),
        (vec!["worker", "--run", "0"], Some("t"), "--run"),
        (vec!["worker", "--run", "1", "--lease-seconds", "0"], Some("t"), "--lease-seconds"),
        (vec!["worker", "--run", "1", "--retries", "101"], Some("t"), "--retries"),
        (vec!["worker", "--run", "1", "--read-timeout", "0"], Some("t"), "--read-timeout"),
        (vec!["worker", "--run", "1", "--ca-cert", "/no/such/ca.pem"], Some("t"), "--ca-cert"),
        // The token: never on the command line, and somewhere.
        (vec!["worker", "--run", "1", "--token", "t"], Some("t"), "--token-file"),
        (vec!["worker", "--run", "1"], None, "RUNTIME_POLICY_TOKEN"),
        (vec!["worker", "--run", "1"], Some(" "), "RUNTIME_POLICY_TOKEN is empty"),
        (vec!["worker", "--run", "1", "--token-file", token_file], None, "is empty"),
        (vec!["worker", "--run", "1", "--token-file", "/no/such/token"], None, "--token-file"),
    ] {
        let mut c = std::process::Command::new(bin);
        c.env("DATABASE_URL", &db).env_remove("RUNTIME_POLICY_TOKEN").args(&args);
        if let Some(t) = env_token {
            c.env("RUNTIME_POLICY_TOKEN", t);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(names), "{args:?} should name {names}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

on_both_backends!(concurrent_claims_never_share_a_block, |t| {
    let s = store(&t);
    s.update(&admin(), "worker.claim_batch_size", &json!(3), 0, None).await.unwrap();
    let run =
        run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(60)).unwrap()).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let db = t.db.clone();
            tokio::spawn(async move {
                let w = WorkerName::parse(&format!("w{i}")).unwrap();
                let mut mine = Vec::new();
                loop {
                    let c = run_store::claim(&db, run.id, holder(&w), Duration::from_secs(60), chrono::Utc::now())
                        .await
                        .unwrap();
                    if c.blocks.is_empty() {
                        return mine;
                    }
                    assert!(c.blocks.len() <= 3);
                    for b in c.blocks {
                        run_store::complete(&db, run.id, &b.block_uid, holder(&w), b.attempt, "ok").await.unwrap();
                        mine.push(b.block_uid);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (60, 60));
    assert_eq!(run_status(&t, run.id).await, ("done".to_string(), 60, 0));
    t.finish().await;
});

/// Runs the binary off the async threads, so the in-process server keeps answering it.
async fn command(args: Vec<String>, token: Option<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_runtime-policy"));
        c.args(&args).env_remove("RUNTIME_POLICY_TOKEN");
        if let Some(t) = token {
            c.env("RUNTIME_POLICY_TOKEN", t);
        }
        c.output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_command_finishes_a_run_over_http() {
    let t = helpers::TestDb::new(runtime_policy::config::Backend::Sqlite).await;
    let base = spawn_app(&t).await;
    let tok = token(&t, "cli-worker").await;
    let run = run_store::create_run(&store(&t), &Creator::cli(), &NewBlocks::parse("blocks", texts(12)).unwrap())
        .await
        .unwrap();
    // The token from a file (with the newline an editor leaves).
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{tok}\n")).unwrap();
    let out = command(
        vec![
            "worker".into(),
            "--run".into(),
            run.id.to_string(),
            "--server".into(),
            base.clone(),
            "--token-file".into(),
            token_file.to_str().unwrap().into(),
            "--name".into(),
            "cli-1".into(),
        ],
        Some("rpw_not_this_one".into()),
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("run {}: 12 blocks in 2 claims and 12 provider calls by cli-1", run.id)),
        "{text}"
    );
    assert!(blocks(&t, run.id).await.iter().all(|b| b.2 == "done" && b.4.as_deref() == Some("cli-1")));

    // A bad token: one line, exit 1, nothing claimed.
    let other = run_store::create_run(&store(&t), &Creator::cli(), &NewBlocks::parse("blocks", texts(1)).unwrap())
        .await
        .unwrap();
    let out = command(
        vec!["worker".into(), "--run".into(), other.id.to_string(), "--server".into(), base.clone()],
        Some("rpw_wrong".into()),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(blocks(&t, other.id).await.iter().all(|b| b.2 == "pending"));
    t.finish().await;
}

on_both_backends!(a_claim_belongs_to_its_token_and_scopes_limit_what_a_token_does, |t| {
    let base = spawn_app(&t).await;
    let s = store(&t);
    let run = run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(3)).unwrap()).await.unwrap();
    let other =
        run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(1)).unwrap()).await.unwrap();
    let a = ApiClient::new(&base, &token(&t, "token-a").await).unwrap();
    let b = ApiClient::new(&base, &token(&t, "token-b").await).unwrap();

    // A claims everything; B, even naming A's worker and attempt, can neither complete nor fail it.
    let claim = a.claim(run.id, "a", Some(60)).await.unwrap();
    assert_eq!(claim.blocks.len(), 3);
    let held = &claim.blocks[0];
    for (path, body) in [
        (
            paths::api_block_complete(run.id, &held.block_uid),
            json!({ "worker": "a", "attempt": held.attempt, "result": "forged" }),
        ),
        (
            paths::api_block_fail(run.id, &held.block_uid),
            json!({ "worker": "a", "attempt": held.attempt, "error": "forged" }),
        ),
    ] {
        let r = b.send(Method::POST, &path, Some(&body)).await.unwrap();
        assert_eq!(r.status, StatusCode::CONFLICT);
        let error: Value = serde_json::from_slice(&r.body).unwrap();
        let text = error["error"].as_str().unwrap();
        assert!(text.contains("not held by this token"), "{text}");
        assert!(
            !text.contains("token-a") && !text.contains("held by a") && !text.contains("state"),
            "reveals too much: {text}"
        );
    }
    // B's own claim gets none of A's blocks.
    assert!(b.claim(run.id, "b", Some(60)).await.unwrap().blocks.is_empty());
    assert!(blocks(&t, run.id)
        .await
        .iter()
        .all(|blk| blk.2 == "claimed" && blk.4.as_deref() == Some("a") && blk.6.is_none()));
    // A completes its own.
    a.complete(run.id, &held.block_uid, "a", held.attempt, "ok").await.unwrap();

    // Revoking A ends its claims at once: the blocks are claimable again, the attempt counted.
    revoke_token(&t.db, &TokenName::parse("token-a").unwrap()).await.unwrap();
    let rest = blocks(&t, run.id).await;
    assert_eq!(rest.iter().filter(|blk| blk.2 == "pending" && blk.3 == 1).count(), 2, "{rest:?}");
    let again = b.claim(run.id, "b", Some(60)).await.unwrap();
    assert_eq!((again.blocks.len(), again.blocks[0].attempt), (2, 2));

    // Scopes: a read-only token reads snapshots and nothing else; a token bound to a run
    // touches only that run.
    let read_only = Grant::parse(&["snapshot:read".to_string()], None).unwrap();
    let reader =
        ApiClient::new(&base, &create_token(&t.db, &TokenName::parse("reader").unwrap(), &read_only).await.unwrap())
            .unwrap();
    assert_eq!(reader.send(Method::GET, &paths::api_run_policy(run.id), None).await.unwrap().status, StatusCode::OK);
    let r = reader.send(Method::POST, &paths::api_run_claims(run.id), Some(&json!({ "worker": "r" }))).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&r.body).contains("lacks the scope runs:work"));
    let r = reader.send(Method::POST, paths::API_RUNS, Some(&json!({ "blocks": ["x"] }))).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let bound = Grant::parse(&["runs:work".to_string(), "snapshot:read".to_string()], Some(run.id)).unwrap();
    let worker =
        ApiClient::new(&base, &create_token(&t.db, &TokenName::parse("bound").unwrap(), &bound).await.unwrap())
            .unwrap();
    assert_eq!(worker.send(Method::GET, &paths::api_run_policy(run.id), None).await.unwrap().status, StatusCode::OK);
    let r = worker.send(Method::POST, &paths::api_run_claims(other.id), Some(&json!({ "worker": "w" }))).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&r.body).contains(&format!("bound to run {}", run.id)));
    assert_eq!(blocks(&t, other.id).await[0].2, "pending", "nothing claimed on the other run");
    t.finish().await;
});

on_both_backends!(a_revoked_claim_on_its_last_attempt_fails_the_block_at_the_next_claim, |t| {
    let s = store(&t);
    let run = run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(1)).unwrap()).await.unwrap();
    // Zero retries: the first claim is the last allowed attempt.
    sqlx::query("UPDATE blocks SET attempts = 3 WHERE run_id = $1").bind(run.id).execute(&t.db.pool).await.unwrap();
    let tok = token(&t, "last").await;
    let id: i64 =
        sqlx::query("SELECT id FROM worker_tokens WHERE name = 'last'").fetch_one(&t.db.pool).await.unwrap().get("id");
    let w = WorkerName::parse("w").unwrap();
    let c =
        run_store::claim(&t.db, run.id, Holder { token: id, worker: &w }, Duration::from_secs(60), chrono::Utc::now())
            .await
            .unwrap();
    assert_eq!(c.blocks[0].attempt, 4);
    revoke_token(&t.db, &TokenName::parse("last").unwrap()).await.unwrap();
    let c = run_store::claim(&t.db, run.id, holder(&w), Duration::from_secs(60), chrono::Utc::now()).await.unwrap();
    assert!(c.blocks.is_empty() && c.finished, "{c:?}");
    assert_eq!(run_status(&t, run.id).await, ("failed".to_string(), 0, 1));
    let _ = tok;
    t.finish().await;
});

on_both_backends!(an_env_value_with_a_nul_never_stops_a_run, |t| {
    // The value PostgreSQL cannot store: resolution skips it, so the snapshot holds the default.
    let env = HashMap::from([(
        "models.provider_registry".to_string(),
        r#"[{"id": "a", "label": "A\u0000", "enabled": true, "models": ["m"]}]"#.to_string(),
    )]);
    let s = PolicyStore::new(t.db.clone(), env);
    let run = run_store::create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts(1)).unwrap()).await.unwrap();
    let stored = run_store::snapshot(&t.db, run.id).await.unwrap();
    let registry = stored.snapshot.get("models.provider_registry").unwrap();
    assert_eq!(registry.captured_from, Layer::Default);
    assert!(!stored.text.contains("\\u0000"));
    t.finish().await;
});
