//! Server functions of sign-in. Each is a public HTTP endpoint (POST under `/api/`).

use leptos::prelude::*;

use super::types::AuthUser;
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

    let (db, hasher, settings) = (server_context::<Db>()?, server_context::<Hasher>()?, server_context::<AuthSettings>()?);
    let waits = server_context::<Waits>()?;
    let parts = use_context::<axum::http::request::Parts>().ok_or_else(AppError::internal)?;
    let session = leptos_axum::extract::<tower_sessions::Session>().await.map_err(|_| {
        tracing::error!("login called without the session layer");
        AppError::internal()
    })?;
    let client = client_address(&parts, settings.trust_proxy);
    let user = authenticate(&db, &hasher, &waits, &email, &password, &client).await?;
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
