//! The composition root: the router (the Leptos app, the API route table, static files,
//! health), the middleware around it, and `serve`. Nothing imports this module but `main`.

pub mod headers;
pub mod limits;
pub mod middleware;
pub mod page_cache;
pub mod request_log;
pub mod serve;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, MethodRouter};
use axum::{Extension, Router};
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::app::{shell, App};
use crate::auth::session::AuthSettings;
use crate::auth::session::RequestUser;
use crate::auth::setup::superuser_exists;
use crate::config::Config;
use crate::db::Db;
use crate::error::AppError;
use crate::paths;
use crate::policy::instances::{env_disagreement, Instance};
use crate::policy::store::PolicyStore;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let context = {
        let state = state.clone();
        move || state.provide_contexts()
    };
    let mut router = Router::new().route("/", get(root));
    for (path, _, handler) in api_routes() {
        router = router.route(path, handler);
    }
    let router = router
        .leptos_routes_with_context(&state, routes, context, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state.clone());
    // The bundle and the icon are answered before any session or database work, from files
    // compressed at build time when the browser takes them so.
    let site = std::path::Path::new(&*state.leptos_options.site_root).to_path_buf();
    let pkg = site.join(&*state.leptos_options.site_pkg_dir);
    let assets = tower_http::services::ServeDir::new(pkg).precompressed_br().precompressed_gzip();
    let router = middleware::session_layers(router, &state)
        .nest_service(&format!("/{}", state.leptos_options.site_pkg_dir), assets)
        .route_service("/favicon.svg", tower_http::services::ServeFile::new(site.join("favicon.svg")));
    middleware::edge_layers(router, &state)
}

/// The HTTP routes outside Leptos (health, and the worker API as it comes): path, method, and
/// handler. The router mounts exactly these, and the access-control test calls each of them.
pub fn api_routes() -> Vec<(&'static str, Method, MethodRouter<AppState>)> {
    let mut routes = vec![
        (paths::HEALTHZ, Method::GET, get(healthz)),
        (paths::READYZ, Method::GET, get(readyz)),
        (paths::METRICS, Method::GET, get(metrics)),
        (paths::AUDIT_EXPORT_CSV, Method::GET, get(crate::settings::export::export_csv)),
        (paths::AUDIT_EXPORT_JSON, Method::GET, get(crate::settings::export::export_json)),
    ];
    routes.extend(crate::runs::http::routes());
    routes.push((paths::RUNS_UPLOAD, Method::POST, axum::routing::post(crate::runs::http::upload_from_page)));
    routes.extend(crate::settings::rest::routes());
    routes.push((paths::API_OPENAPI, Method::GET, get(openapi)));
    routes
}

/// Every `/api/v1` route described, from the endpoint modules (`api_doc.rs`).
pub fn api_docs() -> Vec<crate::api_doc::RouteDoc> {
    let mut docs = crate::runs::http::docs();
    docs.extend(crate::settings::rest::docs());
    for (path, format) in [(paths::AUDIT_EXPORT_CSV, "CSV"), (paths::AUDIT_EXPORT_JSON, "JSON")] {
        docs.push(crate::api_doc::RouteDoc {
            path,
            method: Method::GET,
            summary: if format == "CSV" {
                "The audit log as CSV (?key=&actor=&from=&to=), as the page downloads it"
            } else {
                "The audit log as JSON (?key=&actor=&from=&to=), as the page downloads it"
            },
            caller: crate::api_doc::Caller::Session,
            body: None,
            responses: &[
                (200, "the rows"),
                (401, "not signed in"),
                (403, "not a superuser"),
                (422, "a filter not allowed"),
            ],
        });
    }
    docs.push(crate::api_doc::RouteDoc {
        path: paths::API_OPENAPI,
        method: Method::GET,
        summary: "This document",
        caller: crate::api_doc::Caller::Public,
        body: None,
        responses: &[(200, "the OpenAPI 3.1 document")],
    });
    docs
}

/// `/api/v1/openapi.json`: public, it describes the API and holds nothing else.
async fn openapi() -> impl IntoResponse {
    axum::Json(openapi_document())
}

/// The OpenAPI document, with the policy keys as the values of `{key}`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let keys = crate::policy::registry::REGISTRY.iter().map(|s| s.key.to_string()).collect();
    crate::api_doc::document(
        &api_docs(),
        &[("key", keys), ("decision", vec!["approve".into(), "reject".into(), "withdraw".into()])],
    )
}

/// `/`: each role's home (members cannot see the settings); anonymous visitors go to the
/// settings, which send them on to sign in.
async fn root(user: Option<Extension<RequestUser>>) -> Redirect {
    match user.and_then(|Extension(u)| u.0) {
        Some(u) => Redirect::to(u.role.home()),
        None => Redirect::to(paths::SETTINGS),
    }
}

/// 200 once the database answers a query, 503 while it does not.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.db.ping().await {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

/// 200 while this instance should get traffic: the database answers, every migration this
/// build carries is applied, and the server is not stopping; else 503 saying which.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.stopping.get() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    match state.db.migrations_applied().await {
        Ok(true) => (StatusCode::OK, "ready"),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "migrations not applied"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

/// The Prometheus text format, for a superuser's session, a client at one of `METRICS_ALLOW`,
/// or the `METRICS_TOKEN` bearer token; 403 for anyone else.
async fn metrics(
    State(state): State<AppState>,
    peer: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    user: Option<Extension<RequestUser>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let superuser = user.and_then(|Extension(u)| u.0).is_some_and(|u| u.is_superuser());
    let from_allowed = peer.is_some_and(|Extension(p)| state.metrics_access.allow.contains(&p.0.ip().to_canonical()));
    let bearer = crate::auth::token::bearer_token(&headers).map(crate::db::sha256_hex);
    let with_token = bearer.is_some() && bearer == state.metrics_access.token_sha256;
    if !(superuser || from_allowed || with_token) {
        return AppError::Forbidden(
            "Metrics are readable by a superuser, from the addresses in METRICS_ALLOW, or with METRICS_TOKEN.".into(),
        )
        .into_response();
    }
    let mut gauges = Vec::new();
    let pool = &state.db.pool;
    gauges.push(crate::metrics::Gauge {
        name: "db_pool_connections",
        help: "Database connections open (in use and idle).",
        values: vec![(vec![], pool.size() as f64)],
    });
    gauges.push(crate::metrics::Gauge {
        name: "db_pool_idle_connections",
        help: "Database connections open and idle.",
        values: vec![(vec![], pool.num_idle() as f64)],
    });
    if let Ok(rows) = sqlx::query("SELECT state, COUNT(*) AS n FROM blocks GROUP BY state").fetch_all(pool).await {
        use sqlx::Row;
        let values = rows
            .iter()
            .filter_map(|r| {
                Some((vec![("state", r.try_get::<String, _>("state").ok()?)], r.try_get::<i64, _>("n").ok()? as f64))
            })
            .collect();
        gauges.push(crate::metrics::Gauge { name: "blocks", help: "Blocks of every run, by state.", values });
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.db.metrics.render(&gauges))
        .into_response()
}

/// Opens and migrates the database, then serves until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> Result<(), AppError> {
    let db = Db::open(&config.database_url).await?;
    let options = config.leptos_options.clone();
    let pkg = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    if !pkg.join("runtime-policy.js").exists() {
        tracing::warn!(
            "no wasm bundle in {}: pages render but will not hydrate; build it with scripts/build.sh",
            pkg.display()
        );
    }
    let addr = options.site_addr;
    let settings = AuthSettings {
        cookie_secure: config.cookie_secure,
        public_origin: config.public_origin.clone(),
        trust_proxy: config.trust_proxy,
    };
    let mut state = AppState::open(db, &config.database_url, options, settings).await?;
    state.metrics_access = config.metrics_access.clone();
    // Listening before the setup address is printed, so that opening it at once never finds
    // the port closed.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| AppError::Config(format!("LEPTOS_SITE_ADDR: cannot listen on {addr}: {e}")))?;
    if !superuser_exists(&state.db).await? {
        // Shown once, on the terminal that started the server; never logged.
        let token = state.auth.setup.issue();
        let host =
            if addr.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
        let origin = config.public_origin.clone().unwrap_or_else(|| format!("http://{host}"));
        println!(
            "\nFirst run: no superuser exists yet. To create one, open this address (it works once):\n\n    {}\n\nor run: runtime-policy user create EMAIL --role superuser\n",
            paths::setup_href(&origin, &token)
        );
        tracing::warn!("no superuser yet: open the one-time setup address printed above, or use the CLI");
    }
    state.auth.sessions.spawn_cleanup();
    crate::policy::webhooks::spawn_dispatcher(state.db.clone());
    let instance = Instance::register(&state.policy).await?;
    spawn_instance_heartbeat(instance.clone(), state.policy.clone());
    log_policy_warnings(&state.policy).await;
    let policy = state.policy.clone();
    let stopping = state.stopping.clone();
    let app = router(state);
    let limits = serve::ServeLimits::production();
    tracing::info!(max_connections = limits.max_connections, "listening on http://{addr}");
    let stop = async move {
        shutdown_signal().await;
        // Readiness fails at once, so a load balancer stops sending while requests drain.
        stopping.set();
        tracing::info!("stopping: /readyz answers 503 while requests in flight finish");
    };
    serve::serve_on(listener, app, limits, stop).await;
    let _ = instance.leave(&policy).await;
    Ok(())
}

/// Refreshes this instance's row every minute, keeps whether the live instances disagree on
/// the env layer for the settings page, and says so in the log (once per change of mind).
fn spawn_instance_heartbeat(instance: Instance, policy: PolicyStore) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        let mut said: Option<String> = None;
        loop {
            tick.tick().await;
            if let Err(e) = instance.refresh(&policy).await {
                tracing::warn!(error = %e, "cannot refresh this instance's row");
            }
            match env_disagreement(&policy).await {
                Ok(now) if now != said => {
                    policy.env_warning.set(now.clone());
                    if let Some(w) = &now {
                        tracing::warn!("{w}");
                    } else if said.is_some() {
                        tracing::info!("the server instances agree on the env layer again");
                    }
                    said = now;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot compare the instances' env layers"),
            }
        }
    });
}

/// Says at start which layers resolution skips, and which `POLICY__` variables name no key.
async fn log_policy_warnings(policy: &PolicyStore) {
    for name in crate::policy::resolve::unknown_env_vars() {
        tracing::warn!("{name} names no policy key; it is ignored");
    }
    match policy.resolve().await {
        Ok(all) => {
            for r in all {
                for w in &r.warnings {
                    tracing::warn!(key = %r.key, "{w}");
                }
            }
        }
        Err(e) => tracing::warn!("cannot resolve the policy at start: {e}"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
