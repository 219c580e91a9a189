//! The app state: everything the handlers need, built once at start by the composition root
//! (`web/`). Handlers take their part of it through `FromRef` (`State<Db>`, `State<PolicyStore>`);
//! server functions find the same parts in their context ([`crate::context::server_context`]).
//! No globals.

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;

use crate::auth::password::Hasher;
use crate::auth::session::{AuthSettings, SessionBackend};
use crate::auth::setup::SetupToken;
use crate::auth::signin::Waits;
use crate::config::DatabaseUrl;
use crate::db::Db;
use crate::error::AppError;
use crate::policy::store::PolicyStore;

/// Everything sign-in needs beside the database.
#[derive(Clone, Debug)]
pub struct AuthServices {
    pub hasher: Hasher,
    /// Clients known to be waiting before their next sign-in.
    pub waits: Waits,
    pub sessions: SessionBackend,
    pub settings: AuthSettings,
    /// The first-run setup token, issued at start while no superuser exists.
    pub setup: SetupToken,
}

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub policy: PolicyStore,
    pub leptos_options: LeptosOptions,
    pub auth: AuthServices,
    /// Set once the server has been asked to stop: readiness fails while requests drain.
    pub stopping: Stopping,
    /// Who may read `/metrics` without a superuser's session.
    pub metrics_access: crate::config::MetricsAccess,
}

/// Whether the server is stopping, shared by every clone of the state.
#[derive(Clone, Debug, Default)]
pub struct Stopping(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Stopping {
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl AppState {
    /// Opens what the app needs beside the (already open and migrated) database: the session
    /// store in the same database, the password hasher, and the policy store whose env layer
    /// comes from this process's environment.
    pub async fn open(
        db: Db,
        url: &DatabaseUrl,
        leptos_options: LeptosOptions,
        settings: AuthSettings,
    ) -> Result<AppState, AppError> {
        let sessions = SessionBackend::open(url).await?;
        let hasher = tokio::task::spawn_blocking(Hasher::default)
            .await
            .map_err(|e| AppError::Internal(format!("cannot start the password hasher: {e}")))?;
        Ok(AppState {
            policy: PolicyStore::from_process_env(db.clone()),
            db,
            leptos_options,
            stopping: Stopping::default(),
            metrics_access: Default::default(),
            auth: AuthServices { hasher, waits: Waits::default(), sessions, settings, setup: SetupToken::default() },
        })
    }

    /// Puts the parts server functions use into the current (request's) context.
    pub fn provide_contexts(&self) {
        provide_context(self.db.clone());
        provide_context(self.policy.clone());
        provide_context(self.auth.hasher.clone());
        provide_context(self.auth.waits.clone());
        provide_context(self.auth.settings.clone());
        provide_context(self.auth.setup.clone());
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for PolicyStore {
    fn from_ref(state: &AppState) -> Self {
        state.policy.clone()
    }
}
