//! Server functions of sign-in. Each is a public HTTP endpoint (POST under `/api/`).

use leptos::prelude::*;

use super::types::{AuthUser, SetupStatus};
use crate::error::AppError;

/// Signs in and returns where to go next: `next` when it is a path on this site, else the
/// settings page for a superuser and the runs for a member. A form posted without JavaScript is
/// redirected there directly.
#[server(endpoint = "login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<String, AppError> {
    use crate::auth::password::Hasher;
    use crate::auth::session::{start_session, AuthSettings};
    use crate::auth::signin::{authenticate, client_address, Waits};
    use crate::context::server_context;
    use crate::db::Db;
    use crate::error::is_plain_form_post;
    use crate::paths::safe_next;

    let (db, hasher, settings) =
        (server_context::<Db>()?, server_context::<Hasher>()?, server_context::<AuthSettings>()?);
    let waits = server_context::<Waits>()?;
    let parts = use_context::<axum::http::request::Parts>().ok_or_else(AppError::internal)?;
    let session = leptos_axum::extract::<tower_sessions::Session>().await.map_err(|_| {
        tracing::error!("login called without the session layer");
        AppError::internal()
    })?;
    let client = client_address(&parts, settings.trust_proxy);
    let attempt = authenticate(&db, &hasher, &waits, &email, &password, &client).await;
    let outcome = match &attempt {
        Ok(_) => "success",
        Err(e) if e.status_code() == 429 => "throttled",
        Err(_) => "failure",
    };
    db.metrics.inc("sign_ins_total", &[("outcome", outcome)]);
    let user = attempt?;
    start_session(&session, &user).await?;
    tracing::info!(user = user.email, "signed in");
    let target = match next.as_deref().filter(|n| !n.is_empty()) {
        None => user.role.home().to_string(),
        asked => safe_next(asked),
    };
    if is_plain_form_post() {
        leptos_axum::redirect(&target);
    }
    Ok(target)
}

/// Signs out: the session's data is deleted. Anyone may call it; without a session it does nothing.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let session = leptos_axum::extract::<tower_sessions::Session>().await.map_err(|_| {
        tracing::error!("logout called without the session layer");
        AppError::internal()
    })?;
    crate::auth::session::end_session(&session).await?;
    if crate::error::is_plain_form_post() {
        leptos_axum::redirect(crate::paths::LOGIN);
    }
    Ok(())
}

/// The signed-in user, or `None` for an anonymous visitor.
#[server(endpoint = "current_user")]
pub async fn current_user() -> Result<Option<AuthUser>, AppError> {
    Ok(crate::auth::guard::signed_in_user())
}

/// Where first-run setup stands for the address's token (`token` empty on the sign-in page,
/// which only asks whether a superuser exists). Anyone may call it.
#[server(endpoint = "setup_state")]
pub async fn setup_state(token: String) -> Result<SetupStatus, AppError> {
    use crate::auth::setup::{setup_state, SetupToken};
    use crate::context::server_context;
    let (db, setup) = (server_context::<crate::db::Db>()?, server_context::<SetupToken>()?);
    setup_state(&db, &setup, &token).await
}

/// Creates the first superuser with the one-time setup token and signs them in; returns where
/// to go next (the settings). Anyone may call it: the token is the credential.
#[server(endpoint = "first_superuser")]
pub async fn first_superuser(
    token: String,
    email: String,
    password: String,
    password_again: String,
) -> Result<String, AppError> {
    use crate::auth::password::Hasher;
    use crate::auth::session::start_session;
    use crate::auth::setup::{create_first_superuser, SetupToken};
    use crate::context::server_context;

    let (db, hasher, setup) =
        (server_context::<crate::db::Db>()?, server_context::<Hasher>()?, server_context::<SetupToken>()?);
    let session = leptos_axum::extract::<tower_sessions::Session>().await.map_err(|_| {
        tracing::error!("first_superuser called without the session layer");
        AppError::internal()
    })?;
    let user = create_first_superuser(&db, &hasher, &setup, &token, &email, &password, &password_again).await?;
    start_session(&session, &user).await?;
    let target = user.role.home().to_string();
    if crate::error::is_plain_form_post() {
        leptos_axum::redirect(&target);
    }
    Ok(target)
}
