//! Batching, worker reports and the fleet, on both backends: 1,000 blocks packed into batches
//! and finished exactly once by two workers whose leases expire mid-batch; what a batch
//! completion must name; events stored, bounded and shown; the reference worker batching,
//! marking its system prompt cacheable and reporting a provider that ignores caching without
//! failing the run; the fleet page's data.

use std::collections::HashMap;
use std::time::Duration;

use runtime_policy::auth::token::{create_token, Grant, TokenName};
use runtime_policy::error::AppError;
use runtime_policy::paths;
use runtime_policy::policy::store::{Actor, PolicyStore};
use runtime_policy::runs::claims::{self, BatchEntry, Holder};
use runtime_policy::runs::input::{NewBlocks, WorkerName};
use runtime_policy::runs::server::{create_run, Creator};
use runtime_policy::runs::types::BlockState;
use runtime_policy::runs::worker::{self, ApiClient, ClientOptions, WorkerConfig};
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{self, spawn_app};

fn store(t: &helpers::TestDb) -> PolicyStore {
    PolicyStore::new(t.db.clone(), HashMap::new())
}

fn admin() -> Actor {
    Actor::user(1, "root@example.com")
}

/// Turns batching on with a small budget: 256 max tokens × (1 − 0.5) = 128 tokens a batch.
async fn small_batches(s: &PolicyStore) {
    s.update(&admin(), "worker.batching.enabled", &json!(true), 0, None).await.unwrap();
    s.update(&admin(), "worker.batching.safety_margin", &json!(0.5), 0, None).await.unwrap();
    s.update(&admin(), "models.platform_default_max_tokens", &json!(256), 0, None).await.unwrap();
}

/// Asserts a 429 whose error says `words`.
fn assert_too_many(r: &worker::ApiResponse, words: &str) {
    assert_eq!(r.status, 429);
    assert!(r.json::<Value>().unwrap()["error"].as_str().unwrap().contains(words), "{:?}", r.body);
}

fn entries(uids: &[String]) -> Vec<BatchEntry> {
    uids.iter().map(|u| BatchEntry { block_uid: u.clone(), outcome: Ok(format!("result of {u}")) }).collect()
}

on_both_backends!(a_thousand_blocks_in_batches_are_each_done_exactly_once, |t| {
    let s = store(&t);
    small_batches(&s).await;
    s.update(&admin(), "worker.claim_batch_size", &json!(50), 0, None).await.unwrap();
    s.update(&admin(), "worker.max_retries", &json!(10), 0, None).await.unwrap();
    let texts: Vec<String> = (0..1000).map(|i| format!("block {i} {}", "x".repeat(i * 37 % 700))).collect();
    let run = create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts).unwrap()).await.unwrap();
    let (a, b) = (WorkerName::parse("worker-a").unwrap(), WorkerName::parse("worker-b").unwrap());
    let (ha, hb) = (Holder { token: 1, worker: &a }, Holder { token: 2, worker: &b });
    let lease = Duration::from_secs(5);
    let mut now = t.db.now().await.unwrap();
    let mut done: HashMap<String, usize> = HashMap::new();
    let mut late: Vec<(String, Vec<String>)> = Vec::new();
    let mut batches_seen = 0;
    let mut largest_alone = false;
    let mut lost = 0;
    for round in 0.. {
        assert!(round < 500, "the run did not finish");
        let ca = claims::claim(&t.db, run.id, ha, lease, now).await.unwrap();
        let cb = claims::claim(&t.db, run.id, hb, lease, now).await.unwrap();
        // Batches A held past their lease in the last round are completed now, after B (or A)
        // may have claimed their blocks again: only blocks still held are stored.
        for (batch, uids) in late.drain(..) {
            match claims::complete_batch(&t.db, run.id, &batch, ha, &entries(&uids)).await {
                Ok(outcomes) => {
                    lost += outcomes.iter().filter(|o| o.state.is_none()).count();
                    for o in outcomes.into_iter().filter(|o| o.state == Some(BlockState::Done)) {
                        *done.entry(o.block_uid).or_default() += 1;
                    }
                }
                Err(AppError::Conflict(_) | AppError::NotFound(_)) => lost += uids.len(),
                Err(e) => panic!("late batch: {e}"),
            }
        }
        if ca.finished && cb.finished {
            break;
        }
        for (claim, holder) in [(&ca, ha), (&cb, hb)] {
            assert_eq!(
                claim.batches.iter().map(|b| b.block_uids.len()).sum::<usize>(),
                claim.blocks.len(),
                "every claimed block is in one batch"
            );
            for (i, batch) in claim.batches.iter().enumerate() {
                batches_seen += 1;
                assert!(batch.estimated_tokens <= batch.budget || batch.block_uids.len() == 1, "{batch:?}");
                largest_alone |= batch.estimated_tokens > batch.budget;
                // Every third round A lets its first batch's lease run out.
                if holder.token == 1 && i == 0 && round % 3 == 0 {
                    late.push((batch.batch_id.clone(), batch.block_uids.clone()));
                    continue;
                }
                let outcomes =
                    claims::complete_batch(&t.db, run.id, &batch.batch_id, holder, &entries(&batch.block_uids))
                        .await
                        .unwrap();
                for o in outcomes.into_iter().filter(|o| o.state == Some(BlockState::Done)) {
                    *done.entry(o.block_uid).or_default() += 1;
                }
            }
        }
        now += chrono::Duration::seconds(10);
    }
    assert!(batches_seen > 20, "{batches_seen} batches");
    assert!(lost > 0, "no late completion found its blocks claimed again");
    assert!(largest_alone, "a block over the budget goes alone");
    assert_eq!(done.len(), 1000, "every block done");
    assert!(done.values().all(|n| *n == 1), "a block was done twice");
    let row = sqlx::query("SELECT status, blocks_done, blocks_failed FROM runs WHERE id = $1")
        .bind(run.id)
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("status").unwrap(), "done");
    assert_eq!(row.try_get::<i64, _>("blocks_done").unwrap(), 1000);
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM blocks WHERE run_id = $1 AND state = 'done' AND result IS NOT NULL")
            .bind(run.id)
            .fetch_one(&t.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1000);
    t.finish().await;
});

on_both_backends!(a_batch_completion_names_exactly_its_blocks, |t| {
    let s = store(&t);
    small_batches(&s).await;
    let texts: Vec<String> = (0..4).map(|i| format!("short block {i}")).collect();
    let run = create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts).unwrap()).await.unwrap();
    let w = WorkerName::parse("w").unwrap();
    let h = Holder { token: 7, worker: &w };
    let now = t.db.now().await.unwrap();
    let claim = claims::claim(&t.db, run.id, h, Duration::from_secs(60), now).await.unwrap();
    assert_eq!(claim.batches.len(), 1, "four short blocks fit one batch");
    let batch = &claim.batches[0];
    let uids = batch.block_uids.clone();
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM blocks WHERE run_id = $1 AND state <> 'claimed'")
            .bind(run.id)
            .fetch_one(&t.db.pool)
            .await
            .unwrap()
    };

    let mut twice = entries(&uids);
    twice.push(twice[0].clone());
    let e = claims::complete_batch(&t.db, run.id, &batch.batch_id, h, &twice).await.unwrap_err();
    assert!(matches!(&e, AppError::Field { field, .. } if field == "results[4].block_uid"), "{e}");
    let mut extra = entries(&uids);
    extra.push(BatchEntry { block_uid: format!("r{}-b99", run.id), outcome: Ok("x".into()) });
    let e = claims::complete_batch(&t.db, run.id, &batch.batch_id, h, &extra).await.unwrap_err();
    assert!(e.to_string().contains("is not in batch"), "{e}");
    let e = claims::complete_batch(&t.db, run.id, "c-nope-0", h, &entries(&uids)).await.unwrap_err();
    assert!(matches!(e, AppError::NotFound(_)), "{e}");
    let other = WorkerName::parse("other").unwrap();
    let e =
        claims::complete_batch(&t.db, run.id, &batch.batch_id, Holder { token: 8, worker: &other }, &entries(&uids))
            .await
            .unwrap_err();
    assert!(matches!(e, AppError::Conflict(_)), "{e}");
    assert_eq!(stored().await, 0, "a refused completion wrote something");

    // One block has no entry and one has an error: both are retried, the others done.
    let mut partial = entries(&uids[..2]);
    partial.push(BatchEntry { block_uid: uids[3].clone(), outcome: Err("the model refused".into()) });
    let outcomes = claims::complete_batch(&t.db, run.id, &batch.batch_id, h, &partial).await.unwrap();
    let states: Vec<Option<BlockState>> = outcomes.iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        [Some(BlockState::Done), Some(BlockState::Done), Some(BlockState::Pending), Some(BlockState::Pending)]
    );
    let errors: Vec<Option<String>> =
        sqlx::query("SELECT error FROM blocks WHERE run_id = $1 AND state = 'pending' ORDER BY block_index")
            .bind(run.id)
            .fetch_all(&t.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("error").unwrap())
            .collect();
    assert_eq!(
        errors,
        [Some("the batch's results had no entry for this block".to_string()), Some("the model refused".to_string())]
    );
    // The results record the policy that produced them.
    let row =
        sqlx::query("SELECT result_model, result_temperature, result_max_tokens FROM blocks WHERE block_uid = $1")
            .bind(&uids[0])
            .fetch_one(&t.db.pool)
            .await
            .unwrap();
    assert_eq!(row.try_get::<String, _>("result_model").unwrap(), "anthropic/claude-sonnet-4-5");
    assert_eq!(row.try_get::<String, _>("result_temperature").unwrap(), "0.3");
    assert_eq!(row.try_get::<i64, _>("result_max_tokens").unwrap(), 256);
    // A batch done is done: completing it again stores nothing.
    let e = claims::complete_batch(&t.db, run.id, &batch.batch_id, h, &entries(&uids)).await.unwrap_err();
    assert!(matches!(e, AppError::Conflict(_)), "{e}");
    t.finish().await;
});

fn config(base: &str, token: &str, run_id: i64, name: &str, ignores_caching: bool) -> WorkerConfig {
    WorkerConfig {
        server: base.to_string(),
        token: token.to_string(),
        run_id,
        name: name.to_string(),
        lease_seconds: Some(60),
        idle_wait: Duration::from_millis(50),
        client: ClientOptions::default(),
        provider_ignores_caching: ignores_caching,
    }
}

on_both_backends!(the_reference_worker_batches_and_a_caching_warning_never_fails_the_run, |t| {
    let base = spawn_app(&t).await;
    let s = store(&t);
    small_batches(&s).await;
    s.update(&admin(), "worker.prompt_caching.enabled", &json!(true), 0, None).await.unwrap();
    let token = create_token(&t.db, &TokenName::parse("batcher").unwrap(), &Grant::all()).await.unwrap();
    let texts: Vec<String> = (0..30).map(|i| format!("paragraph {i} of the document")).collect();
    let run = create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts).unwrap()).await.unwrap();

    let report = worker::run(&config(&base, &token, run.id, "cache-less", true)).await.unwrap();
    assert_eq!(report.completed.len(), 30);
    assert!(report.provider_calls < 30, "{} calls for 30 blocks: no batching", report.provider_calls);
    assert_eq!(report.warnings, ["caching_ignored"]);

    let client = ApiClient::new(&base, &token).unwrap();
    let res = client.send(axum::http::Method::GET, &paths::api_run(run.id), None).await.unwrap();
    assert_eq!(res.status, 200);
    let progress: Value = res.json().unwrap();
    assert_eq!(progress["run"]["status"], "done", "a warning failed the run: {progress}");
    assert_eq!(progress["counts"]["done"], 30);
    assert_eq!(progress["events"][0]["code"], "caching_ignored");
    assert_eq!(progress["events"][0]["level"], "warning");
    assert_eq!(progress["events"][0]["count"], 1);
    assert_eq!(progress["workers"][0]["worker"], "cache-less");
    assert_eq!(progress["workers"][0]["token"], "batcher");

    // A provider that applies caching draws no warning.
    let run2 = create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", vec!["one".into()]).unwrap()).await.unwrap();
    let report = worker::run(&config(&base, &token, run2.id, "cached", false)).await.unwrap();
    assert!(report.warnings.is_empty());
    t.finish().await;
});

on_both_backends!(events_are_checked_bounded_and_shown, |t| {
    let base = spawn_app(&t).await;
    let s = store(&t);
    let token = create_token(&t.db, &TokenName::parse("reporter").unwrap(), &Grant::all()).await.unwrap();
    let run = create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", vec!["a".into()]).unwrap()).await.unwrap();
    let client = ApiClient::new(&base, &token).unwrap();
    let post = |body: Value| {
        let client = client.clone();
        async move { client.send(axum::http::Method::POST, &paths::api_run_events(run.id), Some(&body)).await.unwrap() }
    };
    let uid = format!("r{}-b0", run.id);
    let r =
        post(json!({"worker": "w1", "level": "info", "code": "warmup", "message": "started", "block_uid": uid})).await;
    assert_eq!(r.status, 201);
    for (body, field) in [
        (json!({"worker": "w1", "level": "error", "code": "x", "message": "m"}), "level"),
        (json!({"worker": "w1", "level": "info", "code": "Bad Code", "message": "m"}), "code"),
        (json!({"worker": "w1", "level": "info", "code": "x", "message": "m".repeat(1001)}), "message"),
        (json!({"worker": "w1", "level": "info", "code": "x", "message": "m", "block_uid": "r0-b0"}), "block_uid"),
        (json!({"worker": "", "level": "info", "code": "x", "message": "m"}), "worker"),
        (json!({"worker": "w1", "level": "info", "code": "x"}), "message"),
    ] {
        let r = post(body).await;
        assert_eq!(r.status, 422, "{field}");
        assert_eq!(r.json::<Value>().unwrap()["field"], field);
    }
    // 120 a minute, then 429 with Retry-After; nothing more is stored.
    for i in 1..120 {
        let r =
            post(json!({"worker": "w1", "level": "warning", "code": "caching_ignored", "message": format!("n{i}")}))
                .await;
        assert_eq!(r.status, 201, "event {i}");
    }
    let r = post(json!({"worker": "w1", "level": "warning", "code": "caching_ignored", "message": "over"})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after, Some(Duration::from_secs(60)));
    let count = |t: &helpers::TestDb| {
        let pool = t.db.pool.clone();
        async move { sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM run_events").fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(count(&t).await, 120);
    // At most 500 per token and 1,000 per run: older events count toward both.
    sqlx::query("UPDATE run_events SET created_at = '2000-01-01T00:00:00.000000Z'").execute(&t.db.pool).await.unwrap();
    let token_id: i64 =
        sqlx::query_scalar("SELECT id FROM worker_tokens WHERE name = 'reporter'").fetch_one(&t.db.pool).await.unwrap();
    let filler = |n: usize, token: Option<i64>| {
        let pool = t.db.pool.clone();
        async move {
            for i in 0..n {
                sqlx::query(
                    "INSERT INTO run_events (run_id, created_at, level, code, message, worker, token_id)
                     VALUES ($1, '2000-01-01T00:00:00.000000Z', 'info', 'filler', $2, 'w1', $3)",
                )
                .bind(run.id)
                .bind(format!("f{i}"))
                .bind(token)
                .execute(&pool)
                .await
                .unwrap();
            }
        }
    };
    filler(380, Some(token_id)).await;
    let r = post(json!({"worker": "w1", "level": "info", "code": "x", "message": "one too many for this token"})).await;
    assert_too_many(&r, "this token already reported 500");
    // Another worker's token still has room, until the run is full.
    let other = create_token(&t.db, &TokenName::parse("reporter-2").unwrap(), &Grant::all()).await.unwrap();
    let other = ApiClient::new(&base, &other).unwrap();
    let post_other = |body: Value| {
        let other = other.clone();
        async move { other.send(axum::http::Method::POST, &paths::api_run_events(run.id), Some(&body)).await.unwrap() }
    };
    assert_eq!(post_other(json!({"worker": "w2", "level": "info", "code": "x", "message": "room"})).await.status, 201);
    filler(499, None).await;
    let r = post_other(json!({"worker": "w2", "level": "info", "code": "x", "message": "full"})).await;
    assert_too_many(&r, "already holds 1000 events");
    assert_eq!(count(&t).await, 1000);

    // Shown by code with the latest of each, warnings first; the run is untouched.
    let progress: Value =
        client.send(axum::http::Method::GET, &paths::api_run(run.id), None).await.unwrap().json().unwrap();
    let events = progress["events"].as_array().unwrap();
    assert_eq!(events[0]["code"], "caching_ignored");
    assert_eq!(events[0]["count"], 119);
    assert_eq!(events[0]["latest_message"], "n119");
    let codes: Vec<&str> = events.iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["caching_ignored", "filler", "warmup", "x"]);
    assert_eq!(progress["run"]["status"], "pending");
    t.finish().await;
});

on_both_backends!(the_fleet_shows_workers_their_runs_and_snapshot_drift, |t| {
    let s = store(&t);
    let run = create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", vec!["a".into(), "b".into()]).unwrap())
        .await
        .unwrap();
    let token = create_token(&t.db, &TokenName::parse("fleet-token").unwrap(), &Grant::all()).await.unwrap();
    let token_id: i64 = sqlx::query_scalar("SELECT id FROM worker_tokens WHERE name = 'fleet-token'")
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    let _ = token;
    let w = WorkerName::parse("holder-1").unwrap();
    let now = t.db.now().await.unwrap();
    let claim = claims::claim(&t.db, run.id, Holder { token: token_id, worker: &w }, Duration::from_secs(300), now)
        .await
        .unwrap();
    assert_eq!(claim.blocks.len(), 2);
    s.update(&admin(), "worker.max_retries", &json!(5), 0, Some("more")).await.unwrap();

    let fleet = runtime_policy::runs::fleet::fleet(&s, t.db.now().await.unwrap()).await.unwrap();
    assert_eq!(fleet.workers.len(), 1);
    let worker = &fleet.workers[0];
    assert_eq!((worker.worker.as_str(), worker.token.as_str()), ("holder-1", "fleet-token"));
    assert_eq!(worker.runs.len(), 1);
    assert_eq!(worker.runs[0].run_id, run.id);
    assert_eq!(worker.runs[0].held_blocks, 2);
    assert_eq!(worker.runs[0].policy_revision, run.policy_revision);
    assert_eq!(worker.runs[0].differing_keys, ["worker.max_retries"]);
    assert!(fleet.baseline_revision > run.policy_revision);

    // An hour later the worker is no longer part of the fleet.
    let later = t.db.now().await.unwrap() + chrono::Duration::minutes(61);
    assert!(runtime_policy::runs::fleet::fleet(&s, later).await.unwrap().workers.is_empty());
    t.finish().await;
});

on_both_backends!(a_block_that_left_its_batch_is_left_to_its_new_holder, |t| {
    let s = store(&t);
    small_batches(&s).await;
    let texts: Vec<String> = (0..4).map(|i| format!("short block {i}")).collect();
    let run = create_run(&s, &Creator::cli(), &NewBlocks::parse("blocks", texts).unwrap()).await.unwrap();
    let (a, b) = (WorkerName::parse("a").unwrap(), WorkerName::parse("b").unwrap());
    let (ha, hb) = (Holder { token: 1, worker: &a }, Holder { token: 2, worker: &b });
    let now = t.db.now().await.unwrap();
    let first = claims::claim(&t.db, run.id, ha, Duration::from_secs(60), now).await.unwrap();
    let batch = first.batches[0].clone();
    assert_eq!(batch.block_uids.len(), 4);
    // One block of A's batch goes back to the queue and B takes it in a batch of its own.
    let moved = &first.blocks[2];
    claims::fail(&t.db, run.id, &moved.block_uid, ha, moved.attempt, "provider timeout").await.unwrap();
    let second = claims::claim(&t.db, run.id, hb, Duration::from_secs(60), now).await.unwrap();
    assert_eq!(second.blocks.iter().map(|b| &b.block_uid).collect::<Vec<_>>(), [&moved.block_uid]);

    // A completes its whole batch: three blocks are stored, the moved one is B's.
    let outcomes =
        claims::complete_batch(&t.db, run.id, &batch.batch_id, ha, &entries(&batch.block_uids)).await.unwrap();
    let states: Vec<(String, Option<BlockState>)> = outcomes.into_iter().map(|o| (o.block_uid, o.state)).collect();
    assert_eq!(states.iter().filter(|(_, s)| *s == Some(BlockState::Done)).count(), 3);
    assert_eq!(states.iter().find(|(u, _)| *u == moved.block_uid).unwrap().1, None);
    let outcomes =
        claims::complete_batch(&t.db, run.id, &second.batches[0].batch_id, hb, &entries(&second.batches[0].block_uids))
            .await
            .unwrap();
    assert_eq!(outcomes[0].state, Some(BlockState::Done));
    let result: String = sqlx::query_scalar("SELECT result FROM blocks WHERE run_id = $1 AND block_uid = $2")
        .bind(run.id)
        .bind(&moved.block_uid)
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(result, format!("result of {}", moved.block_uid));
    let row = sqlx::query("SELECT status, blocks_done FROM runs WHERE id = $1")
        .bind(run.id)
        .fetch_one(&t.db.pool)
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("status").unwrap(), "done");
    assert_eq!(row.try_get::<i64, _>("blocks_done").unwrap(), 4);

    // Too many entries, however they are named, are refused before anything is read.
    let many: Vec<BatchEntry> =
        (0..101).map(|i| BatchEntry { block_uid: format!("x{i}"), outcome: Ok("r".into()) }).collect();
    let e = claims::complete_batch(&t.db, run.id, &batch.batch_id, ha, &many).await.unwrap_err();
    assert!(matches!(&e, AppError::Field { field, .. } if field == "results"), "{e}");
    t.finish().await;
});

/// A transaction PostgreSQL aborts to break a deadlock is a retryable 503, not an internal error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_a_retryable_503() {
    if helpers::postgres_url().is_none() {
        eprintln!("SKIPPED a_deadlock_is_a_retryable_503: TEST_POSTGRES_URL is unset");
        return;
    }
    let t = helpers::TestDb::new(runtime_policy::config::Backend::Postgres).await;
    sqlx::query("CREATE TABLE lock_pair (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)").execute(&t.db.pool).await.unwrap();
    sqlx::query("INSERT INTO lock_pair VALUES (1, 0), (2, 0)").execute(&t.db.pool).await.unwrap();
    let mut a = t.db.pool.begin().await.unwrap();
    let mut b = t.db.pool.begin().await.unwrap();
    sqlx::query("UPDATE lock_pair SET n = n + 1 WHERE id = 1").execute(&mut *a).await.unwrap();
    sqlx::query("UPDATE lock_pair SET n = n + 1 WHERE id = 2").execute(&mut *b).await.unwrap();
    let first = async { sqlx::query("UPDATE lock_pair SET n = n + 1 WHERE id = 2").execute(&mut *a).await.map(|_| ()) };
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sqlx::query("UPDATE lock_pair SET n = n + 1 WHERE id = 1").execute(&mut *b).await.map(|_| ())
    };
    let (x, y) = tokio::join!(first, second);
    let error = x.err().or(y.err()).expect("PostgreSQL breaks the deadlock by aborting one side");
    let e = AppError::from(error);
    assert_eq!(e.status_code(), 503, "{e:?}");
    assert!(e.to_string().contains("send it again"), "{e}");
    drop((a, b));
    t.finish().await;
}
