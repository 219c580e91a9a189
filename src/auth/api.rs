//! Server functions of sign-in. Each is a public HTTP endpoint (POST under `/api/`).

use leptos::prelude::*;

use super::AuthUser;

/// Signs in and returns where to go next: `next` when it is a path on this site, else the
/// settings page for a superuser and the runs for a member. A form posted without JavaScript is
/// redirected there directly.
#[server(endpoint = "login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<String, ServerFnError> {
    use super::server;
    let state = server::app_state()?;
    let parts = use_context::<axum::http::request::Parts>().ok_or_else(|| ServerFnError::new("no request"))?;
    let session = leptos_axum::extract::<tower_sessions::Session>().await.map_err(|_| {
        tracing::error!("login called without the session layer");
        server::AuthError::Internal.into_server_fn_error()
    })?;
    let client = server::client_address(&parts, state.auth.trust_proxy);
    let user = server::authenticate(&state, &email, &password, &client).await?;
    server::start_session(&session, &user).await?;
    tracing::info!(user = user.email, "signed in");
    let asked = next.as_deref().filter(|n| !n.is_empty());
    let target = match asked {
        None if user.role != super::Role::Superuser => "/app/runs".to_string(),
        _ => server::safe_next(asked),
    };
    if server::is_plain_form_post() {
        leptos_axum::redirect(&target);
    }
    Ok(target)
}

/// Signs out: the session's data is deleted. Anyone may call it; without a session it does nothing.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), ServerFnError> {
    use super::server;
    let session = leptos_axum::extract::<tower_sessions::Session>().await.map_err(|_| {
        tracing::error!("logout called without the session layer");
        server::AuthError::Internal.into_server_fn_error()
    })?;
    server::end_session(&session).await?;
    if server::is_plain_form_post() {
        leptos_axum::redirect("/login");
    }
    Ok(())
}

/// The signed-in user, or `None` for an anonymous visitor.
#[server(endpoint = "current_user")]
pub async fn current_user() -> Result<Option<AuthUser>, ServerFnError> {
    Ok(super::server::signed_in_user())
}
