//! The HTTP server: axum routes, the Leptos app, static files and health.

use axum::extract::{FromRef, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, MethodRouter};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::app::{shell, App, HOME_PATH};
use crate::auth::server::AuthServices;
use crate::config::{Config, DatabaseUrl};
use crate::db::{Db, DbOpenError};
use crate::policy::server::PolicyStore;

/// Everything a request handler or server function may need; no globals.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub policy: PolicyStore,
    pub leptos_options: LeptosOptions,
    pub auth: AuthServices,
}

impl AppState {
    /// Opens what the app needs beside the (already open and migrated) database: the session
    /// store in the same database, the password hasher, and the policy store whose env layer
    /// comes from this process's environment.
    pub async fn open(db: Db, url: &DatabaseUrl, leptos_options: LeptosOptions, cookie_secure: bool) -> Result<AppState, DbOpenError> {
        let auth = AuthServices::open(url, cookie_secure).await?;
        Ok(AppState { policy: PolicyStore::from_process_env(db.clone()), db, leptos_options, auth })
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
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
    crate::auth::server::layers(router, &state)
}

/// The HTTP routes outside Leptos (health, and the worker API as it comes): path, method, and
/// handler. The router mounts exactly these, and the access-control test calls each of them.
pub fn api_routes() -> Vec<(&'static str, Method, MethodRouter<AppState>)> {
    let mut routes = vec![
        ("/healthz", Method::GET, get(healthz)),
        ("/api/v1/audit/export.csv", Method::GET, get(crate::policy::export::export_csv)),
        ("/api/v1/audit/export.json", Method::GET, get(crate::policy::export::export_json)),
    ];
    routes.extend(crate::runs::http::routes());
    routes
}

/// `/`: superusers land on the settings page, everyone else on the runs (members cannot see the
/// settings; anonymous visitors are sent on to sign in from there).
async fn root(user: Option<axum::Extension<crate::auth::server::RequestUser>>) -> Redirect {
    match user.and_then(|u| u.0 .0.clone()) {
        Some(u) if u.role != crate::auth::Role::Superuser => Redirect::to("/app/runs"),
        _ => Redirect::to(HOME_PATH),
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

#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<DbOpenError> for ServeError {
    fn from(e: DbOpenError) -> Self {
        ServeError(e.0)
    }
}

/// Opens and migrates the database, then serves until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let db = Db::open(&config.database_url).await?;
    match crate::auth::server::count_users(&db).await {
        Ok(0) => tracing::warn!(
            "no users yet; create the first superuser with: runtime-policy user create EMAIL --role superuser (password on stdin)"
        ),
        Ok(_) => {}
        Err(_) => return Err(ServeError("cannot count users; see the log above".into())),
    }
    let options = config.leptos_options.clone();
    let pkg = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    if !pkg.join("runtime-policy.js").exists() {
        tracing::warn!(
            "no wasm bundle in {}: pages render but will not hydrate; build it with scripts/build.sh",
            pkg.display()
        );
    }
    let addr = options.site_addr;
    let mut state = AppState::open(db, &config.database_url, options, config.cookie_secure).await?;
    state.auth.public_origin = config.public_origin.clone();
    state.auth.trust_proxy = config.trust_proxy;
    state.auth.sessions.spawn_cleanup();
    log_policy_warnings(&state.policy).await;
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError(format!("LEPTOS_SITE_ADDR: cannot listen on {addr}: {e}")))?;
    tracing::info!("listening on http://{addr}");
    // The peer address feeds the sign-in throttle.
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| ServeError(format!("server stopped: {e}")))
}

/// Says at start which layers resolution skips, and which `POLICY__` variables name no key.
async fn log_policy_warnings(policy: &PolicyStore) {
    // vars_os: a variable that is not UTF-8 (anyone's) must not stop the server.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if let Some(rest) = name.strip_prefix("POLICY__") {
            if !crate::policy::REGISTRY.iter().any(|s| s.env_var() == name) {
                tracing::warn!("{name} names no policy key (POLICY__{rest}); it is ignored");
            }
        }
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
