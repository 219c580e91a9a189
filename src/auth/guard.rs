//! The checks every server function and page render makes on the server: who is signed in,
//! and whether they may.

use leptos::prelude::use_context;

use super::session::RequestUser;
use super::types::{AuthUser, Role};
use crate::error::AppError;

/// The signed-in user of the current request, if any (inside a server function or a page
/// render on the server).
pub fn signed_in_user() -> Option<AuthUser> {
    use_context::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<RequestUser>().cloned())
        .and_then(|u| u.0)
}

/// The signed-in user, or 401.
pub fn require_user() -> Result<AuthUser, AppError> {
    signed_in_user().ok_or_else(AppError::unauthenticated)
}

/// The signed-in user if they have `role` (a superuser has every role), else 401 or 403.
pub fn require_role(role: Role) -> Result<AuthUser, AppError> {
    let user = require_user()?;
    if user.role == Role::Superuser || user.role == role {
        Ok(user)
    } else {
        Err(AppError::forbidden())
    }
}

/// The signed-in superuser, or 401 (anonymous) or 403 (member).
pub fn require_superuser() -> Result<AuthUser, AppError> {
    require_role(Role::Superuser)
}

/// Who may call an HTTP handler outside Leptos, from the user the middleware loaded.
pub fn require_superuser_of(user: Option<&RequestUser>) -> Result<AuthUser, AppError> {
    match user.and_then(|u| u.0.clone()) {
        None => Err(AppError::unauthenticated()),
        Some(u) if u.role != Role::Superuser => Err(AppError::forbidden()),
        Some(u) => Ok(u),
    }
}
