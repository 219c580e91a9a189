//! A benchmark, not a test (`cargo test` does not build it): run-creation throughput with 1
//! and 8 concurrent clients, and the latency of the snapshot read over HTTP, on SQLite and
//! (when TEST_POSTGRES_URL is set) PostgreSQL.
//!
//!     TEST_POSTGRES_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres \
//!       cargo bench --features ssr --bench runs_bench

#[path = "../tests/it/helpers.rs"]
#[macro_use]
mod helpers;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use runtime_policy::auth::token::{create_token, Grant, TokenName};
use runtime_policy::config::Backend;
use runtime_policy::paths::api_run_policy;
use runtime_policy::policy::store::PolicyStore;
use runtime_policy::runs::input::NewBlocks;
use runtime_policy::runs::server::{self as runs, Creator};
use runtime_policy::runs::worker::ApiClient;

const RUNS_PER_CLIENT_SINGLE: usize = 200;
const CLIENTS: usize = 8;
const RUNS_PER_CLIENT_MULTI: usize = 50;
const BLOCKS_PER_RUN: usize = 10;
const SNAPSHOT_READS: usize = 2000;

async fn creation_rate(store: &PolicyStore, clients: usize, per_client: usize) -> f64 {
    let blocks = NewBlocks::parse("blocks", (0..BLOCKS_PER_RUN).map(|i| format!("block {i}")).collect()).unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let store = store.clone();
            let blocks = blocks.clone();
            tokio::spawn(async move {
                for _ in 0..per_client {
                    runs::create_run(&store, &Creator::cli(), &blocks).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (clients * per_client) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn bench(backend: Backend) {
    let t = helpers::TestDb::new(backend).await;
    let store = PolicyStore::new(t.db.clone(), HashMap::new());
    let single = creation_rate(&store, 1, RUNS_PER_CLIENT_SINGLE).await;
    let multi = creation_rate(&store, CLIENTS, RUNS_PER_CLIENT_MULTI).await;

    let base = helpers::spawn_app(&t).await;
    let token = create_token(&t.db, &TokenName::parse("bench").unwrap(), &Grant::all()).await.unwrap();
    let client = ApiClient::new(&base, &token).unwrap();
    let mut times = Vec::with_capacity(SNAPSHOT_READS);
    for i in 0..SNAPSHOT_READS {
        let path = api_run_policy(1 + (i % 100) as i64);
        let start = Instant::now();
        let res = client.send(Method::GET, &path, None).await.unwrap();
        times.push(start.elapsed());
        assert_eq!(res.status, StatusCode::OK);
    }
    times.sort();
    let direct_start = Instant::now();
    for i in 0..SNAPSHOT_READS {
        runs::snapshot(&t.db, 1 + (i % 100) as i64).await.unwrap();
    }
    let direct = direct_start.elapsed() / SNAPSHOT_READS as u32;
    println!(
        "{backend:?}: run creation ({BLOCKS_PER_RUN} blocks each) 1 client {single:.0} runs/s, {CLIENTS} clients {multi:.0} runs/s; \
         snapshot read over HTTP ({SNAPSHOT_READS} requests, new connection each) p50 {:.2} ms, p99 {:.2} ms; \
         query alone mean {:.3} ms",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        direct.as_secs_f64() * 1e3,
    );
    t.finish().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("runtime");
    runtime.block_on(async {
        bench(Backend::Sqlite).await;
        if helpers::postgres_url().is_some() {
            bench(Backend::Postgres).await;
        } else {
            println!("PostgreSQL skipped: TEST_POSTGRES_URL is unset");
        }
    });
}
