//! Shared helpers for the integration tests: a fresh SQLite file or a fresh PostgreSQL
//! database per test, migrated, and removed afterwards; the app state over it; the whole app
//! served on a free port of 127.0.0.1.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use runtime_policy::auth::session::AuthSettings;
use runtime_policy::config::{Backend, DatabaseUrl};
use runtime_policy::db::Db;
use runtime_policy::state::AppState;
use runtime_policy::web::router;
use runtime_policy::web::serve::{serve_on, ServeLimits};
use sqlx::Connection;

/// A migrated database that lives as long as this value (the SQLite folder is deleted on drop;
/// a PostgreSQL database is dropped by [`TestDb::finish`] or left for the next run to reap).
pub struct TestDb {
    pub db: Db,
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

/// The PostgreSQL server the tests use, from `TEST_POSTGRES_URL` (scripts/test.sh sets it).
/// Each test creates its own database on that server and drops it at the end.
pub fn postgres_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL").ok().filter(|s| !s.is_empty())
}

fn admin_url() -> String {
    postgres_url().expect("TEST_POSTGRES_URL")
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("rp_test_{}_{}_{}", std::process::id(), nanos % 1_000_000_000, COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url =
                    DatabaseUrl::parse(&format!("sqlite://{}/test.db", dir.path().display())).expect("sqlite url");
                let db = Db::open(&url).await.expect("open sqlite");
                TestDb { db, url, _dir: Some(dir), pg_name: None }
            }
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let name = unique_name();
                let admin = admin_url();
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL must be running; scripts/test.sh starts it");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
                conn.close().await.ok();
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin).to_string();
                let url = DatabaseUrl::parse(&format!("{base}/{name}")).expect("pg url");
                let db = Db::open(&url).await.expect("open postgres");
                TestDb { db, url, _dir: None, pg_name: Some(name) }
            }
        }
    }

    /// The app state over this database, as `serve` builds it (sessions in the same database).
    pub async fn state(&self) -> AppState {
        self.state_with(false).await
    }

    /// The app state with the session cookie's `Secure` flag set or not.
    pub async fn state_with(&self, cookie_secure: bool) -> AppState {
        let options =
            leptos::config::LeptosOptions::builder().output_name("runtime-policy").site_root("target/site").build();
        let settings = AuthSettings { cookie_secure, ..Default::default() };
        AppState::open(self.db.clone(), &self.url, options, settings).await.expect("open app state")
    }

    /// Closes the pool and drops a PostgreSQL test database.
    pub async fn finish(self) {
        self.db.pool.close().await;
        if let Some(name) = &self.pg_name {
            if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
            }
        }
    }
}

/// Runs a test body, failing it (with its name) when it has not finished within two minutes:
/// a test that waits forever must fail the run, not stall it.
pub async fn within_time_limit(name: &str, body: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(std::time::Duration::from_secs(120), body).await.is_err() {
        panic!("{name} did not finish within 120 s");
    }
}

/// Runs the same async test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $db = $crate::helpers::TestDb::new(runtime_policy::config::Backend::Sqlite).await;
                $crate::helpers::within_time_limit(module_path!(), async move { $body }).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_url().is_none() {
                    eprintln!("SKIPPED {}::postgres: TEST_POSTGRES_URL is unset", module_path!());
                    return;
                }
                let $db = $crate::helpers::TestDb::new(runtime_policy::config::Backend::Postgres).await;
                $crate::helpers::within_time_limit(module_path!(), async move { $body }).await
            }
        }
    };
}

/// Serves the whole app over `t` on a free port of 127.0.0.1 with the production limits, for
/// as long as the test runs; returns its base URL.
pub async fn spawn_app(t: &TestDb) -> String {
    spawn_app_with(t, ServeLimits::production()).await
}

/// [`spawn_app`] with other limits.
pub async fn spawn_app_with(t: &TestDb, limits: ServeLimits) -> String {
    let state = t.state().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(serve_on(listener, router(state), limits, std::future::pending()));
    format!("http://{addr}")
}
