//! What the composition root hands every server function: the database, the policy store, the
//! password hasher and the sign-in settings, each put into the Leptos context on its own, so a
//! feature asks for what it needs and never for the whole app state.

use crate::error::AppError;

/// A value the composition root provided for the current request; an internal error (logged)
/// when it is missing.
pub fn server_context<T: Clone + Send + Sync + 'static>() -> Result<T, AppError> {
    leptos::prelude::use_context::<T>().ok_or_else(|| {
        tracing::error!(missing = std::any::type_name::<T>(), "a server function's context is incomplete");
        AppError::internal()
    })
}
